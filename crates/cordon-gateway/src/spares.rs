//! Warm spares for `isolation = "call"`: a server started ahead, in its own fresh session, for the
//! next call only. A call takes the spare (waiting for it if it is still starting) instead of
//! starting a server, and a new spare is started behind it, off the call's path. Each spare serves
//! one call and is stopped after it, as a server started at the call would be: what one call did
//! never meets the next. Keyed by server and, for a tool with `[tools.NAME]` grants, by tool (its
//! sandbox has that tool's directories too).

use crate::config::{Server, ToolGrant};
use crate::mcp::OnChange;
use crate::upstream::Upstream;
use crate::GatewayError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// (server name, the tool whose grants its sandbox has).
pub type Key = (String, Option<String>);

/// What a spare is started with (owned: it starts on a task of its own).
#[derive(Clone)]
pub struct Recipe {
    pub exe: PathBuf,
    pub server: Server,
    pub opts: crate::gateway::Options,
    pub max_message: usize,
    pub config: String,
    pub grant: Option<ToolGrant>,
}

impl Recipe {
    pub async fn start(&self) -> Result<Upstream, GatewayError> {
        let noop: OnChange = Arc::new(|| {});
        let grant = self.grant.as_ref();
        Upstream::start(&self.exe, &self.server, &self.opts, self.max_message, noop, &self.config, grant).await
    }
}

type Starting = JoinHandle<Result<Upstream, GatewayError>>;

#[derive(Default)]
struct Slots {
    starting: HashMap<Key, Starting>,
    /// Set by [`Spares::drain`]: no spare is started after it (a call still running when the
    /// gateway ends must not leave a server that nobody stops).
    closed: bool,
}

#[derive(Default)]
pub struct Spares {
    slots: Mutex<Slots>,
}

/// A spare taken by a call and not yet handed over: if the call is dropped while it waits (its
/// client gone, the runtime ending), the spare is stopped, not left running with its session open.
struct Taken(Option<Starting>);

impl Drop for Taken {
    fn drop(&mut self) {
        let Some(h) = self.0.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(Ok(u)) = h.await {
                    u.shutdown().await;
                }
            });
        }
    }
}

impl Spares {
    /// Starts a spare for `key` in the background (one per key: a second is not started; none
    /// once the spares are drained).
    pub fn fill(&self, key: Key, recipe: Recipe) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if !slots.closed && !slots.starting.contains_key(&key) {
            slots.starting.insert(key, tokio::spawn(async move { recipe.start().await }));
        }
    }

    /// The spare for `key`, once started (None: there is none; Some(Err): it did not start), and
    /// whether it was still starting when taken (a failure then happened while the call waited). A
    /// spare whose server ended while it waited is stopped and not handed out.
    pub async fn take(&self, key: &Key) -> Option<(Result<Upstream, GatewayError>, bool)> {
        let starting = self.slots.lock().unwrap_or_else(|p| p.into_inner()).starting.remove(key)?;
        let waited = !starting.is_finished();
        let mut taken = Taken(Some(starting));
        let joined = match taken.0.as_mut() {
            Some(h) => h.await,
            None => return None,
        };
        taken.0 = None;
        match joined {
            Ok(Ok(u)) if u.ended().is_some() => {
                u.shutdown().await;
                None
            }
            Ok(r) => Some((r, waited)),
            Err(e) => Some((
                Err(GatewayError::Upstream { server: key.0.clone(), why: format!("its spare's start ended: {e}") }),
                waited,
            )),
        }
    }

    /// Every spare, started or not, stopped (the gateway's end): their sessions end in the log.
    /// No spare is started after this.
    pub async fn drain(&self) {
        let all: Vec<Starting> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.closed = true;
            slots.starting.drain().map(|(_, h)| h).collect()
        };
        for h in all {
            if let Ok(Ok(u)) = h.await {
                u.shutdown().await;
            }
        }
    }
}
