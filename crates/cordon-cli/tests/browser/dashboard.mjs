// The browser half of crates/cordon-cli/tests/dashboard.rs. The test starts Debian's chromium
// (it owns the pid) and gives this script, as JSON in argv[2]: the DevTools endpoint, the server's
// base URL, a viewer token, the views to visit and where screenshots go. This script only drives
// and reports what the browser rendered, as JSON on stdout; the assertions are the test's.
import { createRequire } from 'node:module';

const spec = JSON.parse(process.argv[2]);
// playwright-core lives where scripts/setup-tests installed it (NODE_PATH is no help to import).
const require = createRequire(spec.driver + '/');
const { chromium } = require('playwright-core');

// What a user sees: the visible text, and what the DOM holds that the server never sends
// (its pages carry no script and no image: any such element came from data).
async function look(page, name, res, shoot = true) {
  const seen = await page.evaluate(() => ({
    text: document.body ? document.body.innerText : '',
    title: document.title,
    scripts: document.querySelectorAll('script').length,
    images: document.querySelectorAll('img').length,
    handlers: [...document.querySelectorAll('*')].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith('on'))).length,
    loginForm: !!document.querySelector('form[action="/login"] input[name="token"]'),
    rows: document.querySelectorAll('tr').length,
  }));
  const shot = spec.screenshots && shoot ? `${spec.screenshots}/${name}.png` : null;
  if (shot) await page.screenshot({ path: shot });
  return { name, status: res ? res.status() : 0, url: page.url(), shot, ...seen };
}

const browser = await chromium.connectOverCDP(spec.endpoint);
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
const out = { views: [], dialogs };
try {
  // Not signed in: the dashboard answers with the sign-in form.
  out.anonymous = await look(page, 'anonymous', await page.goto(spec.base + '/'));
  // The real cookie path: the form, typed into, submitted.
  await page.goto(spec.base + '/login');
  await page.fill('input[name="token"]', spec.token);
  const [res] = await Promise.all([page.waitForNavigation(), page.click('form[action="/login"] button')]);
  // Where signing in lands (the sessions list, shot below as itself).
  out.login = await look(page, 'login', res, false);
  for (const v of spec.views) {
    out.views.push(await look(page, v.name, await page.goto(spec.base + v.path)));
  }
  // The sessions list's filter form, used as a user would: a node typed, the form submitted.
  if (spec.filter) {
    await page.goto(spec.base + '/');
    await page.fill('input[name="node"]', spec.filter.node);
    await page.selectOption('select[name="outcome"]', spec.filter.outcome);
    const [r] = await Promise.all([page.waitForNavigation(), page.click('form.f button')]);
    out.views.push(await look(page, 'sessions-filtered', r));
  }
} finally {
  await context.close();
  // Disconnects; the browser itself is the test's to end.
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
