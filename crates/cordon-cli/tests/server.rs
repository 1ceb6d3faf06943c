//! `cordon server` (issue 16): the real server binary (exec'd by the real `cordon`), real sessions
//! recorded by `cordon run`, batches over real TCP; every verdict judged by what the server stored
//! in its database.

mod common;

use common::server::{bearer, fixed_port, http, tempdir, Db, Server, TempDir};
use common::{Env, Who};
use cordon_audit::ship::{Batch, WireRecord};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn post(srv: &Server, token: &str, batch: &Batch) -> (u16, serde_json::Value) {
    let body = serde_json::to_vec(batch).expect("json");
    let (st, _, b) = http(&srv.addr, "POST", "/api/v1/ingest", &[("Authorization", &bearer(token))], &body);
    (st, serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)))
}

/// The records of a real log and its key, as a batch for `node`.
fn batch_of(db: &Path, node: &str) -> Batch {
    let s = cordon_audit::Store::open_read_only(db).expect("open the node's log");
    let recs = s.records_after(0, 1_000_000).expect("records");
    let key = cordon_audit::public_key(db).expect("key");
    Batch {
        node: node.into(),
        public_key: key.to_bytes().iter().map(|b| format!("{b:02x}")).collect(),
        records: recs.iter().map(WireRecord::from_record).collect(),
    }
}

/// An env with `n` sessions recorded by the real `cordon run` (as root).
fn recorded(n: usize) -> Env {
    let e = Env::new(Who::Root);
    for i in 0..n {
        let o = e.run_sh(&format!("echo session {i}; cat /nonexistent 2>/dev/null; true"));
        assert!(o.status.success(), "{}", common::show(&o));
    }
    e
}

fn stored(srv: &Server, node: &str) -> i64 {
    srv.sql(&format!("SELECT count(*) FROM records WHERE node = '{node}'"))
}

#[test]
fn server_refuses_to_listen_beyond_loopback_unless_told() {
    let dir = tempdir("server-test");
    let o = Command::new(CORDON)
        .args(["server", "--listen", "0.0.0.0:0", "--database"])
        .arg(format!("sqlite:{}", dir.0.join("s.db").display()))
        .output()
        .expect("spawn");
    assert_eq!(o.status.code(), Some(2), "{}", common::show(&o));
    assert!(
        common::err(&o).contains("--allow-remote") && common::err(&o).contains("plain HTTP"),
        "{}",
        common::show(&o)
    );
    // PostgreSQL: servers of one database sign policies with one key, so it is named.
    let o = Command::new(CORDON).args(["server", "--database", "postgres://u:s3cret@x/y"]).output().expect("spawn");
    assert_eq!(o.status.code(), Some(2), "{}", common::show(&o));
    assert!(common::err(&o).contains("--key PATH.key is required"), "{}", common::show(&o));
    // Nothing listens there: the error names where (the password hidden) and what to check.
    let key = dir.0.join("k.key");
    let o = Command::new(CORDON)
        .args(["server", "--listen", "127.0.0.1:0", "--database", "postgres://u:s3cret@127.0.0.1:1/y", "--key"])
        .arg(&key)
        .output()
        .expect("spawn");
    assert_eq!(o.status.code(), Some(125), "{}", common::show(&o));
    let err = common::err(&o);
    assert!(
        err.contains("postgres://u:***@127.0.0.1:1/y") && err.contains("is PostgreSQL running at 127.0.0.1:1?"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let o = Command::new(CORDON).args(["server", "--database", "mysql://u:s3cret@h/d"]).output().expect("spawn");
    assert!(
        common::err(&o).contains("not a database this server knows") && !common::err(&o).contains("s3cret"),
        "{}",
        common::show(&o)
    );
}

/// Every endpoint wants a token, each role only what it may; bodies are bounded and parsed without
/// a panic, every error a JSON object naming what is missing or wrong.
#[test]
fn server_endpoints_need_the_right_token_and_bounded_well_formed_bodies() {
    if !common::need_root() {
        return;
    }
    let dir = tempdir("server-test");
    let srv = Server::start(&dir.0);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "alice"));
    // The database holds every node's evidence and the token digests: the server's user's only.
    for f in [srv.db.clone(), PathBuf::from(format!("{}-wal", srv.db.display()))] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).expect("the database's files").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {:o}", f.display(), mode & 0o777);
    }
    let err =
        |b: &str| serde_json::from_str::<serde_json::Value>(b).expect(b)["error"].as_str().unwrap_or("").to_string();
    for path in ["/api/v1/ingest", "/metrics"] {
        let (st, head, b) = http(&srv.addr, if path == "/metrics" { "GET" } else { "POST" }, path, &[], b"{}");
        assert_eq!(st, 401, "{path}: {b}");
        assert!(err(&b).contains("Authorization: Bearer"), "{b}");
        assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    }
    let (st, _, b) = http(&srv.addr, "GET", "/metrics", &[("Authorization", "Bearer cordon_0000")], b"");
    assert_eq!((st, err(&b).contains("not one this server issued")), (401, true), "{b}");
    let (st, _, b) = http(&srv.addr, "POST", "/api/v1/ingest", &[("Authorization", &bearer(&viewer))], b"{}");
    assert_eq!((st, err(&b).contains("viewer token may not write")), (403, true), "{b}");
    let (st, _, b) = http(&srv.addr, "GET", "/", &[("Authorization", &bearer(&node))], b"");
    assert_eq!((st, err(&b).contains("node token may not read")), (403, true), "{b}");
    // A login cookie never writes.
    let (st, _, b) = http(&srv.addr, "POST", "/api/v1/ingest", &[("Cookie", &format!("cordon_token={node}"))], b"{}");
    assert_eq!((st, err(&b).contains("cookie only reads")), (403, true), "{b}");
    let auth = [("Authorization", bearer(&node))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (st, _, b) = http(&srv.addr, "POST", "/api/v1/ingest", &auth, b"{\"node\": \"n1\", \"records\": [\xff]}");
    assert_eq!((st, err(&b).contains("not UTF-8")), (400, true), "{b}");
    let (st, _, b) = http(&srv.addr, "POST", "/api/v1/ingest", &auth, br#"{"node": "n1", "records": []}"#);
    assert_eq!((st, err(&b).contains("missing field `public_key`")), (400, true), "{b}");
    let (st, _, b) =
        http(&srv.addr, "POST", "/api/v1/ingest", &auth, br#"{"node": "n1", "public_key": 7, "records": []}"#);
    assert_eq!((st, err(&b).contains("invalid type")), (400, true), "{b}");
    let (st, _, b) = http(&srv.addr, "POST", "/api/v1/ingest", &auth, &vec![b' '; 9 << 20]);
    assert_eq!((st, err(&b).contains("larger than 8 MiB")), (413, true), "{b}");
    // A node token ships only as its own node.
    let e = recorded(1);
    let (st, v) = post(&srv, &node, &batch_of(&e.root.join("audit.db"), "n2"));
    assert_eq!(st, 403, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("node `n1`'s"), "{v}");
    assert_eq!(srv.sql("SELECT count(*) FROM records"), 0);
    // The server is still there after all of it.
    let (st, _, _) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(st, 200);
}

/// A real session shipped whole is stored record for record; sent again it is accepted and counted
/// once.
#[test]
fn server_stores_a_real_session_verified_and_a_replay_once() {
    if !common::need_root() {
        return;
    }
    let dir = tempdir("server-test");
    stores_a_replay_once(&Db::Sqlite(dir.0.join("server.db")));
}

/// The same on PostgreSQL.
#[test]
fn server_on_postgres_stores_a_real_session_verified_and_a_replay_once() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start() else { return };
    let dir = tempdir("server-test");
    stores_a_replay_once(&Db::Pg(pg.database(), dir.0.join("server.key")));
}

/// PostgreSQL over TLS, asked for as libpq's users write it (`sslmode=verify-full&sslrootcert=CA`
/// in the URL): the same ingest as above, the server's connections encrypted as PostgreSQL itself
/// sees them (pg_stat_ssl), and a plain, an unrooted and a wrongly rooted URL refused with a hint
/// (the cluster lets TCP in only over TLS).
#[test]
fn server_on_postgres_over_tls_verifies_the_database_and_refuses_plain_or_wrong_roots() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start_tls() else { return };
    let dir = tempdir("server-test");
    let url = pg.database_tls();
    let db = Db::Pg(url.clone(), dir.0.join("server.key"));
    stores_a_replay_once(&db);
    let srv = Server::start_store(&db, &loopback(), &[]);
    let viewer = srv.token("viewer", "v");
    assert_eq!(http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&viewer))], b"").0, 200);
    let tcp = |ssl: bool| {
        pg.psql("postgres", &format!("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL AND s.ssl = {ssl}"))
            .expect("pg_stat_ssl")
    };
    assert_ne!(tcp(true), "0", "the server's connections are TLS");
    assert_eq!(tcp(false), "0", "no plain TCP connection");
    drop(srv);
    let base = url.split('?').next().expect("a URL");
    refused(base, &["no encryption", "add sslmode=verify-full&sslrootcert"]);
    refused(&format!("{base}?sslmode=require"), &["needs the CA", "sslrootcert=PATH"]);
    let other = common::certs::ca(&dir.0, "other");
    let wrong = format!("{base}?sslmode=verify-full&sslrootcert={}", other.display());
    refused(&wrong, &["certificate", &format!("sslrootcert={}", other.display())]);
    // The right CA, another host name (the certificate names 127.0.0.1 only): refused, the name checked.
    let ca = pg.tls.as_ref().expect("the cluster's CA").display().to_string();
    let named = base.replacen("@127.0.0.1:", "@localhost:", 1);
    refused(
        &format!("{named}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        &["certificate not valid for name \"localhost\""],
    );
}

/// `cordon server token create --database URL` fails, saying each of `says`.
fn refused(u: &str, says: &[&str]) {
    let o = Command::new(CORDON)
        .args(["server", "token", "create", "--role", "viewer", "--name", "x", "--database", u])
        .output()
        .expect("token create");
    let text = common::show(&o);
    assert!(!o.status.success(), "{u}: accepted: {text}");
    for s in says {
        assert!(text.contains(s), "{u}: no `{s}` in: {text}");
    }
}

/// PostgreSQL that lets TCP in only with a client certificate naming the user (pg_hba `cert`), the
/// certificate and key named in the URL as libpq's users name them (`sslcert`, `sslkey`): the same
/// ingest as above, PostgreSQL itself seeing the certificate (pg_stat_ssl.client_dn). Control:
/// the same URL without them is turned away by the cluster. A key others may read, a certificate
/// for another user and a certificate without its key are refused with a hint.
#[test]
fn server_on_postgres_with_a_client_certificate_stores_and_is_refused_without_one() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start_tls_client_cert() else { return };
    let dir = tempdir("server-test");
    let url = pg.database_tls();
    let (crt, key) = common::certs::client(&pg.dir, "ca", "client", "postgres");
    let with = format!("{url}&sslcert={}&sslkey={}", crt.display(), key.display());
    refused(&url, &["client certificate", "add sslcert=CERT&sslkey=KEY"]);
    let db = Db::Pg(with.clone(), dir.0.join("server.key"));
    stores_a_replay_once(&db);
    let srv = Server::start_store(&db, &loopback(), &[]);
    let dn = pg
        .psql("postgres", "SELECT DISTINCT client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL")
        .expect("pg_stat_ssl");
    assert_eq!(dn, "/CN=postgres", "the server's connections present the certificate");
    drop(srv);
    let open = dir.0.join("open.key");
    std::fs::copy(&key, &open).expect("copy the key");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    refused(
        &format!("{url}&sslcert={}&sslkey={}", crt.display(), open.display()),
        &["others may read it", "chmod 600"],
    );
    // libpq's rule: another owner's key at most 0600, root's at most 0640.
    let theirs = dir.0.join("theirs.key");
    std::fs::copy(&key, &theirs).expect("copy the key");
    std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o640)).expect("chmod");
    let as_root = format!("{url}&sslcert={}&sslkey={}", crt.display(), theirs.display());
    let o = Command::new(CORDON)
        .args(["server", "token", "create", "--role", "viewer", "--name", "x", "--database", &as_root])
        .output()
        .expect("token create");
    assert!(o.status.success(), "a root-owned 0640 key: {}", common::show(&o));
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(common::NOBODY)), None).expect("chown");
    refused(&as_root, &["others may read it (mode 640)"]);
    let (alice, alice_key) = common::certs::client(&pg.dir, "ca", "alice", "alice");
    refused(
        &format!("{url}&sslcert={}&sslkey={}", alice.display(), alice_key.display()),
        &["certificate authentication failed", "common name is the URL's user"],
    );
    refused(&format!("{url}&sslcert={}", crt.display()), &["go together"]);
    refused(
        &format!("{url}&sslcert={}&sslkey={}", crt.display(), alice_key.display()),
        &["the key must be the certificate's own"],
    );
}

fn loopback() -> String {
    format!("127.0.0.1:{}", fixed_port())
}

fn stores_a_replay_once(db: &Db) {
    let e = recorded(2);
    let srv = Server::start_store(db, &loopback(), &[]);
    let node = srv.token("node", "n1");
    let b = batch_of(&e.root.join("audit.db"), "n1");
    let n = b.records.len() as i64;
    assert!(n >= 6, "two sessions: start, end, seal each at least");
    let (st, v) = post(&srv, &node, &b);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["accepted"].as_i64(), v["duplicates"].as_i64(), v["acked_seq"].as_i64()),
        (Some(n), Some(0), Some(n))
    );
    assert_eq!(stored(&srv, "n1"), n);
    assert_eq!(srv.sql("SELECT count(*) FROM sessions WHERE node = 'n1' AND sealed AND outcome = 'exited'"), 2);
    let (st, v) = post(&srv, &node, &b);
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["accepted"].as_i64(), v["duplicates"].as_i64()), (Some(0), Some(n)), "{v}");
    assert_eq!(stored(&srv, "n1"), n, "a replay is stored once");
    // Each stored record is the node's, byte for byte.
    let held = stored_records(&srv, "n1");
    assert_eq!(held.len(), b.records.len());
    for (r, (payload, hash)) in b.records.iter().zip(&held) {
        assert_eq!((payload.as_str(), hash.as_str()), (r.body.as_str(), r.hash.as_str()));
    }
    assert_eq!(srv.sql("SELECT count(*) FROM refusals"), 0);
    // SIGTERM: the server stops serving and exits 0; a restart holds the same.
    let mut srv = srv;
    let st = srv.stop(std::time::Duration::from_secs(10));
    assert!(st.success(), "{st:?}");
    let srv = Server::start_store(db, &srv.addr, &[]);
    assert_eq!(post(&srv, &node, &b).1["duplicates"].as_i64(), Some(n), "a restart holds the same chain");
}

/// A node's stored records in order: (payload, hash in hex).
fn stored_records(srv: &Server, node: &str) -> Vec<(String, String)> {
    match &srv.store {
        Db::Sqlite(p) => {
            let c = rusqlite::Connection::open(p).expect("db");
            let mut st = c.prepare("SELECT payload, hash FROM records WHERE node = ?1 ORDER BY seq").expect("prepare");
            let rows = st.query_map([node], |x| Ok((x.get::<_, String>(0)?, hex(&x.get::<_, Vec<u8>>(1)?))));
            rows.expect("query").collect::<Result<_, _>>().expect("rows")
        }
        // One line a record (a payload is compact JSON: no newline in it), the hash first.
        Db::Pg(url, _) => common::postgres::query(
            url,
            &format!("SELECT encode(hash, 'hex') || ' ' || payload FROM records WHERE node = '{node}' ORDER BY seq"),
        )
        .expect("query")
        .lines()
        .map(|l| {
            let (h, p) = l.split_once(' ').expect("hash payload");
            (p.to_string(), h.to_string())
        })
        .collect(),
    }
}

/// Tampered, reordered, gapped, conflicting and foreign-signed batches are refused (409) whole and
/// the refusal recorded; what the server stored before is untouched.
#[test]
fn server_refuses_tampered_reordered_gapped_and_foreign_batches_whole() {
    if !common::need_root() {
        return;
    }
    let dir = tempdir("server-test");
    refuses_whole(&Db::Sqlite(dir.0.join("server.db")));
}

/// The same on PostgreSQL.
#[test]
fn server_on_postgres_refuses_tampered_reordered_gapped_and_foreign_batches_whole() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start() else { return };
    let dir = tempdir("server-test");
    refuses_whole(&Db::Pg(pg.database(), dir.0.join("server.key")));
}

fn refuses_whole(db: &Db) {
    let e = recorded(2);
    let other = recorded(1);
    let srv = Server::start_store(db, &loopback(), &[]);
    let admin = srv.token("admin", "ops");
    let good = batch_of(&e.root.join("audit.db"), "n1");
    let n = good.records.len();
    let refused = |node: &str, b: &Batch, reason: &str| {
        let before = stored(&srv, node);
        let refusals = srv.sql("SELECT count(*) FROM refusals");
        let (st, v) = post(&srv, &admin, b);
        assert_eq!((st, v["reason"].as_str()), (409, Some(reason)), "{v}");
        assert_eq!(stored(&srv, node), before, "nothing of a refused batch is stored");
        assert_eq!(srv.sql("SELECT count(*) FROM refusals"), refusals + 1);
        assert_eq!(srv.sql(&format!("SELECT count(*) FROM refusals WHERE id = (SELECT max(id) FROM refusals) AND node = '{node}' AND reason = '{reason}'")), 1);
    };
    // Tampered payload: the second session's command rewritten.
    let mut t = Batch { node: "t".into(), ..good.clone() };
    let i = t.records.iter().position(|r| r.body.contains("echo session 1")).expect("the second start");
    t.records[i].body = t.records[i].body.replace("echo session 1", "echo harmless!");
    assert_ne!(t.records[i].body, good.records[i].body);
    refused("t", &t, "hash");
    // Reordered.
    let mut r = Batch { node: "r".into(), ..good.clone() };
    r.records.swap(1, 2);
    refused("r", &r, "gap");
    // A gap: the first half stored, then the rest without its first record.
    let half = Batch { node: "g".into(), records: good.records[..n / 2].to_vec(), ..good.clone() };
    assert_eq!(post(&srv, &admin, &half).0, 200);
    let rest = Batch { node: "g".into(), records: good.records[n / 2 + 1..].to_vec(), ..good.clone() };
    refused("g", &rest, "gap");
    // Out of order across what is stored: a new record, then an old one.
    let back =
        Batch { node: "g".into(), records: vec![good.records[n / 2].clone(), good.records[0].clone()], ..good.clone() };
    refused("g", &back, "reorder");
    // A stored record sent again changed (its hash recomputed to fit: still not the stored one).
    let mut c = Batch { node: "g".into(), records: good.records[..2].to_vec(), ..good.clone() };
    c.records[1].ts_ms += 1;
    refused("g", &c, "conflict");
    // The rest delivered: the chain continues where it stopped.
    let rest = Batch { node: "g".into(), records: good.records[n / 2..].to_vec(), ..good.clone() };
    assert_eq!(post(&srv, &admin, &rest).0, 200);
    assert_eq!(stored(&srv, "g"), n as i64);
    // Seals signed by another key than the one the batch names.
    let foreign = batch_of(&other.root.join("audit.db"), "x");
    refused("f", &Batch { node: "f".into(), public_key: foreign.public_key.clone(), ..good.clone() }, "seal");
    // A node is pinned to the key of its first batch.
    refused("g", &Batch { node: "g".into(), ..foreign }, "key");
    // The dashboard lists them.
    let viewer = srv.token("viewer", "v");
    let (st, _, page) = http(&srv.addr, "GET", "/refusals", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(st, 200);
    for reason in ["hash", "gap", "reorder", "conflict", "seal", "key"] {
        assert!(page.contains(&format!("<td>{reason}</td>")), "{reason} missing from\n{page}");
    }
    // Per node: how far its chain is held and verified, and how many of its batches were refused.
    let (st, _, page) = http(&srv.addr, "GET", "/", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(st, 200);
    let row = format!("<a href=\"/?node=g\">g</a></td><td class=\"mono\">{}…</td><td>records 1..{n}: hash chain verified, every seal signed by the pinned key (records after the last seal: chain only)</td><td>2</td><td>4</td>", &good.public_key[..16]);
    assert!(page.contains(&row), "no `{row}` in\n{page}");
    assert!(!page.contains(">t</a>"), "a node whose every batch was refused has nothing verified:\n{page}");
}

/// `cordon run --server`: with the server down the session still succeeds and says its record was
/// not delivered; `cordon audit ship` delivers it once the server is back; with the server up the
/// run ships at its end.
#[test]
fn server_run_ships_at_its_end_and_audit_ship_delivers_what_a_down_server_missed() {
    if !common::need_root() {
        return;
    }
    for who in common::BOTH {
        run_ships_as(who);
    }
}

fn run_ships_as(who: Who) {
    let e = Env::new(who);
    let dir = tempdir("server-test");
    let mut srv = Server::start(&dir.0);
    let tf = e.root.join("node.token");
    std::fs::write(&tf, srv.token("node", "n1") + "\n").expect("token file");
    e.chown_all_if_nobody();
    let url = format!("http://{}", srv.addr);
    let ship = ["--server", &url, "--server-token-file", tf.to_str().expect("utf-8"), "--server-node", "n1"];
    srv.kill();
    let o = e.run_sh_with(&ship, "echo offline", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", common::show(&o));
    assert!(common::out(&o).contains("offline"));
    assert!(
        common::err(&o).contains("NOT delivered") && common::err(&o).contains("cordon audit ship"),
        "{}",
        common::show(&o)
    );
    let db = e.root.join("audit.db");
    let local = || {
        cordon_audit::Store::open_read_only(&db).expect("log").records_after(0, 1 << 20).expect("records").len() as i64
    };
    let srv = Server::start_on(&dir.0, &srv.addr);
    let mut args = vec!["audit", "ship"];
    args.extend_from_slice(&ship);
    let o = e.cordon(&args);
    assert!(o.status.success(), "{who:?}: {}", common::show(&o));
    assert_eq!(stored(&srv, "n1"), local());
    assert!(common::out(&o).contains(&format!("shipped {} record(s)", local())), "{}", common::show(&o));
    let before = local();
    let o = e.run_sh_with(&ship, "echo online", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", common::show(&o));
    let shipped = format!("shipped {} record(s) to {url}", local() - before);
    assert!(common::err(&o).contains(&shipped), "{who:?}: no `{shipped}` in {}", common::show(&o));
    assert_eq!(stored(&srv, "n1"), local());
    assert_eq!(srv.sql("SELECT count(*) FROM sessions WHERE node = 'n1' AND sealed = 1"), 2);
    // Nothing new: nothing sent.
    let o = e.cordon(&args);
    assert!(common::out(&o).contains("shipped 0 record(s) in 0 batch(es)"), "{}", common::show(&o));
    // The cursor is the log's: a session can neither read nor move it.
    let cursor_dir = cordon_audit::files::ship_dir(&db);
    assert_eq!(std::fs::read_dir(&cursor_dir).expect("cursor dir").count(), 1);
    let d = cursor_dir.display();
    // The session may read the tree the log is in: only the log's mask keeps the cursor out.
    let root = e.root.display().to_string();
    let o = e.run_sh_with(
        &["--allow-read", &root],
        &format!("cat {d}/*.json; ls {root}/home >/dev/null && echo tree-readable; echo x > {d}/moved.json; echo done"),
        &[],
    );
    assert!(common::out(&o).contains("tree-readable\ndone"), "{}", common::show(&o));
    assert!(!common::out(&o).contains("\"seq\""), "the session read the cursor: {}", common::show(&o));
    assert!(!cursor_dir.join("moved.json").exists());
}

/// The server killed (SIGKILL) while a large log streams to it, restarted, shipped again: it holds
/// exactly the node's records, each once, and their chain verifies from the genesis.
#[test]
fn server_killed_mid_stream_then_shipped_again_holds_every_record_once() {
    if !common::need_root() {
        return;
    }
    let e = recorded(1);
    let db = e.root.join("audit.db");
    {
        // A large session on the same log: 20,000 records of ~300 bytes after the real one.
        let mut s = cordon_audit::Store::open(&db).expect("open the log");
        s.append("bulk", &[("start".to_string(), 1, serde_json::json!({"command": ["bulk"]}))]).expect("start");
        for chunk in 0..20 {
            let items: Vec<(String, i64, serde_json::Value)> = (0..1000)
                .map(|i| {
                    ("limit".to_string(), 2, serde_json::json!({"text": format!("{chunk}/{i} {}", "x".repeat(280))}))
                })
                .collect();
            s.append("bulk", &items).expect("append");
        }
        s.finish(
            "bulk",
            &[("end".to_string(), 3, serde_json::json!({"exit_code": 0, "ending": {"kind": "exited", "code": 0}}))],
            3,
        )
        .expect("seal");
    }
    let local = cordon_audit::Store::open_read_only(&db).expect("log").records_after(0, 1 << 20).expect("records");
    let n = local.len() as i64;
    assert!(n > 20_000);
    let dir = tempdir("server-test");
    let mut srv = Server::start(&dir.0);
    let tf = e.root.join("node.token");
    std::fs::write(&tf, srv.token("node", "n1")).expect("token file");
    let url = format!("http://{}", srv.addr);
    let args = [
        "audit",
        "ship",
        "--server",
        &url,
        "--server-token-file",
        tf.to_str().expect("utf-8"),
        "--server-node",
        "n1",
        "--batch",
        "500",
    ];
    let shipper = e.command(CORDON).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ship");
    let at_kill = common::wait_for(std::time::Duration::from_secs(60), || {
        let c = stored(&srv, "n1");
        (c >= 2000).then_some(c)
    })
    .expect("the server stored the first batches");
    srv.kill();
    let o = shipper.wait_with_output().expect("shipper");
    let held = stored(&srv, "n1");
    assert!(held < n, "killed mid-stream: {held} of {n} stored (at the kill: {at_kill})");
    assert!(!o.status.success(), "the shipper says it could not finish: {}", common::show(&o));
    assert!(
        common::err(&o).contains("cannot reach") || common::err(&o).contains("no HTTP answer"),
        "{}",
        common::show(&o)
    );
    let srv = Server::start_on(&dir.0, &srv.addr);
    let o = e.cordon(&args);
    assert!(o.status.success(), "{}", common::show(&o));
    // Counted at both ends: the node's log and the server's table hold the same records, once each.
    assert_eq!(stored(&srv, "n1"), n);
    assert_eq!(srv.sql("SELECT count(DISTINCT seq) FROM records WHERE node = 'n1'"), n);
    assert_eq!(srv.sql("SELECT min(seq) FROM records WHERE node = 'n1'"), 1);
    assert_eq!(srv.sql("SELECT max(seq) FROM records WHERE node = 'n1'"), n);
    let c = rusqlite::Connection::open(&srv.db).expect("db");
    let mut st = c
        .prepare("SELECT seq, session, kind, ts_ms, payload, prev, hash FROM records WHERE node = 'n1' ORDER BY seq")
        .expect("q");
    let held: Vec<cordon_audit::Record> = st
        .query_map([], |r| {
            Ok(cordon_audit::Record {
                seq: r.get(0)?,
                session: r.get(1)?,
                kind: r.get(2)?,
                ts_ms: r.get(3)?,
                body: r.get(4)?,
                prev: r.get(5)?,
                hash: r.get(6)?,
            })
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("records");
    assert_eq!(held, local, "the server holds the node's records exactly");
    let key = cordon_audit::public_key(&db).expect("key");
    assert_eq!(cordon_audit::ship::verify_run((0, &[0; 32]), &key, &held), Ok(()));
    assert_eq!(srv.sql("SELECT count(*) FROM refusals"), 0);
}

const HOSTILE: [&str; 3] = ["<script>", "\"><img src=x onerror=alert(1)>", "\x1b[31m"];

/// Asserts a page shows the hostile values only escaped: entities for HTML, a visible `\u{1b}` for
/// the ANSI escape.
fn only_escaped(page: &str, what: &str) {
    for raw in ["<script>", "<img", "onerror=alert(1)>", "\x1b"] {
        assert!(!page.contains(raw), "{what} holds {raw:?} unescaped:\n{page}");
    }
    for shown in ["&lt;script&gt;", "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;", "\\u{1b}</span>[31m"] {
        assert!(page.contains(shown), "{what} does not show {shown:?}:\n{page}");
    }
}

/// A real session (watched by the sensor) whose argv and paths are hostile, from a node whose name
/// is hostile: every dashboard page shows them escaped; the login form's cookie reads; filters
/// filter.
#[test]
fn server_dashboard_escapes_what_agents_control_and_filters_sessions() {
    if !common::need_root() {
        return;
    }
    dashboard_escapes(None);
}

/// The same with the server on PostgreSQL.
#[test]
fn server_on_postgres_dashboard_escapes_what_agents_control_and_filters_sessions() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start() else { return };
    dashboard_escapes(Some(&pg));
}

fn dashboard_escapes(pg: Option<&common::postgres::Cluster>) {
    let e = Env::new(Who::Root);
    let mut args = vec![
        "run",
        "--monitor",
        "--",
        "/bin/sh",
        "-c",
        "cat \"$1\" \"$2\" \"$3\"; cp /bin/true /tmp/t; /tmp/t; unshare -r true; true",
        "sh",
    ];
    args.extend_from_slice(&HOSTILE);
    let o = e.cordon(&args);
    assert!(o.status.success(), "{}", common::show(&o));
    let dir = tempdir("server-test");
    let db = match pg {
        Some(pg) => Db::Pg(pg.database(), dir.0.join("server.key")),
        None => Db::Sqlite(dir.0.join("server.db")),
    };
    let srv = Server::start_store(&db, &loopback(), &[]);
    let node = HOSTILE.concat();
    let admin = srv.token("admin", "ops");
    let viewer = srv.token("viewer", "alice");
    let b = batch_of(&e.root.join("audit.db"), &node);
    assert_eq!(post(&srv, &admin, &b).0, 200);
    // A refusal from the same node: a replayed record changed.
    let mut bad = Batch { records: b.records[..1].to_vec(), ..b.clone() };
    bad.records[0].ts_ms += 1;
    assert_eq!(post(&srv, &admin, &bad).0, 409);
    let session = b.records[0].session.clone();
    let get = |path: &str, auth: (&str, &str)| {
        let (st, head, body) = http(&srv.addr, "GET", path, &[auth], b"");
        assert_eq!(st, 200, "{path}: {head}\n{body}");
        assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");
        body
    };
    let auth = bearer(&viewer);
    let list = get("/", ("Authorization", &auth));
    only_escaped(&list, "the sessions list");
    assert!(list.contains(&session), "{list}");
    let page = get(&format!("/sessions/{session}"), ("Authorization", &auth));
    only_escaped(&page, "the session's timeline");
    for kind in ["sensor.exec", "sensor.open", "sensor.deny", "start", "end", "seal"] {
        assert!(page.contains(&format!("<td>{kind}</td>")), "no {kind} in the timeline:\n{page}");
    }
    // Refusals in the timeline with their layer; the list counts the supervisor's and the sensor's.
    assert!(page.contains("DENIED exec /tmp/t [landlock]"), "{page}");
    assert!(page.contains("<td>denial</td><td class=\"mono\">DENIED [seccomp] unshare"), "{page}");
    assert!(page.contains("sensor: ") && page.contains(" lost, "), "{page}");
    let count = |kind: &str| {
        srv.sql(&match pg {
            None => format!("SELECT json_extract(payload, '$.denials_total') FROM records WHERE kind = '{kind}'"),
            Some(_) => format!("SELECT (payload::json->>'denials_total')::bigint FROM records WHERE kind = '{kind}'"),
        })
    };
    assert!(count("sensor.summary") > 0);
    assert_eq!(srv.sql("SELECT denials FROM sessions"), count("end") + count("sensor.summary"));
    // The alerts view: the rule `unshare` fired, from the hostile node, linked to the session.
    let alerts = get("/alerts", ("Authorization", &auth));
    only_escaped(&alerts, "the alerts view");
    assert!(alerts.contains("<td>privilege-attempt</td>") && alerts.contains("<td>alert</td>"), "{alerts}");
    assert!(
        alerts.contains(&format!("\">{session}</a>")) && alerts.contains(&format!("/sessions/{session}?node=")),
        "{alerts}"
    );
    let refusals = get("/refusals", ("Authorization", &auth));
    assert!(refusals.contains("<td>conflict</td>") && refusals.contains("&lt;script&gt;"), "{refusals}");
    assert!(!refusals.contains("<script>") && !refusals.contains('\x1b'), "{refusals}");
    // The login form: a viewer token becomes an HttpOnly, SameSite=Strict cookie that reads.
    let form = format!("token={viewer}");
    let (st, head, _) =
        http(&srv.addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], form.as_bytes());
    assert_eq!(st, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .expect("a cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let jar = cookie.split(';').next().expect("name=value").to_string();
    only_escaped(&get("/", ("Cookie", &jar)), "the list seen through the login cookie");
    let (st, _, _) = http(
        &srv.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"token=cordon_nope",
    );
    assert_eq!(st, 401);
    let (st, _, page) = http(&srv.addr, "GET", "/", &[], b"");
    assert!(st == 401 && page.contains("<form method=\"post\" action=\"/login\">"), "{page}");
    // Filters: by node, outcome and time.
    let q = |query: &str| get(&format!("/?{query}"), ("Authorization", &auth));
    let enc: String = node.bytes().map(|c| format!("%{c:02X}")).collect();
    assert!(q(&format!("node={enc}&outcome=exited")).contains(&session));
    for miss in ["node=other", "outcome=unfinished", "outcome=signaled", "since=2999-01-01", "until=2000-01-01"] {
        let page = q(miss);
        assert!(!page.contains(&session) && page.contains("<p>0 session(s)</p>"), "{miss}:\n{page}");
    }
    assert!(q("since=2000-01-01T00:00&until=2999-12-31").contains(&session));
    let (st, _, page) = http(&srv.addr, "GET", "/?since=%3Cscript%3E", &[("Authorization", &auth)], b"");
    assert!(st == 400 && page.contains("&lt;script&gt; is not a time"), "{page}");
    let (st, _, _) = http(&srv.addr, "GET", "/sessions/nonesuch", &[("Authorization", &auth)], b"");
    assert_eq!(st, 404);
}

/// /metrics: OpenMetrics text with Prometheus names, counting what the server did; viewers read
/// it, node tokens do not.
#[test]
fn server_metrics_count_records_sessions_and_refusals_by_reason() {
    if !common::need_root() {
        return;
    }
    let e = recorded(2);
    let dir = tempdir("server-test");
    let srv = Server::start(&dir.0);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "alice"));
    let b = batch_of(&e.root.join("audit.db"), "n1");
    let n = b.records.len();
    assert_eq!(post(&srv, &node, &b).0, 200);
    assert_eq!(post(&srv, &node, &b).0, 200, "a replay");
    let mut t = b.clone();
    t.records[0].ts_ms += 1;
    assert_eq!(post(&srv, &node, &t).0, 409);
    let (st, _, _) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&node))], b"");
    assert_eq!(st, 403);
    let (st, head, m) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(st, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    for line in [
        "# TYPE cordon_server_records_ingested counter".to_string(),
        format!("cordon_server_records_ingested_total {n}"),
        format!("cordon_server_records_duplicate_total {n}"),
        "cordon_server_ingest_batches_total 2".into(),
        "cordon_server_ingest_refusals_total{reason=\"conflict\"} 1".into(),
        "cordon_server_sessions_total{outcome=\"exited\"} 2".into(),
        "# EOF".into(),
    ] {
        assert!(m.lines().any(|l| l == line), "no `{line}` in\n{m}");
    }
}

/// /metrics counts what the stored records say: the supervisors' refusals by layer and the rules
/// that fired, from a real session that tried a privileged call (seccomp refuses `unshare`, the
/// builtin rule `privilege-attempt` alerts); the expected numbers are read from the node's own log.
#[test]
fn server_metrics_count_denials_by_layer_and_alerts_by_rule() {
    if !common::need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let o = e.run_sh("unshare -U true; unshare -n true; true");
    assert!(o.status.success(), "{}", common::show(&o));
    let db = e.root.join("audit.db");
    let log =
        cordon_audit::Store::open_read_only(&db).expect("the node's log").records_after(0, 100_000).expect("records");
    let body = |r: &cordon_audit::Record| serde_json::from_str::<serde_json::Value>(&r.body).expect("body");
    let seccomp: u64 = log
        .iter()
        .filter(|r| r.kind == "denial")
        .map(body)
        .filter(|b| b["layer"] == "seccomp")
        .map(|b| b["count"].as_u64().unwrap_or(1))
        .sum();
    let alerts =
        log.iter().filter(|r| r.kind == "alert").map(body).filter(|b| b["rule"] == "privilege-attempt").count();
    assert!(seccomp >= 2 && alerts >= 1, "the session left no seccomp denial or no alert: {seccomp} {alerts}");
    let dir = tempdir("server-test");
    let srv = Server::start(&dir.0);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "alice"));
    assert_eq!(post(&srv, &node, &batch_of(&db, "n1")).0, 200);
    let (st, _, m) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(st, 200);
    for line in [
        format!("cordon_server_denials_total{{layer=\"seccomp\"}} {seccomp}"),
        format!("cordon_server_alerts_total{{rule=\"privilege-attempt\"}} {alerts}"),
        "cordon_server_stale_sessions 0".into(),
        "# TYPE cordon_server_tool_call_duration_seconds histogram".into(),
    ] {
        assert!(m.lines().any(|l| l == line), "no `{line}` in\n{m}");
    }
}

/// A session's timeline in pages: every record on exactly one page, in order, linked by "next".
#[test]
fn server_pages_a_sessions_timeline() {
    if !common::need_root() {
        return;
    }
    let e = recorded(1);
    let dir = tempdir("server-test");
    let srv = Server::start(&dir.0);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "v"));
    let b = batch_of(&e.root.join("audit.db"), "n1");
    assert_eq!(post(&srv, &node, &b).0, 200);
    let session = b.records[0].session.clone();
    let seqs: Vec<i64> = b.records.iter().filter(|r| r.session == session).map(|r| r.seq).collect();
    assert!(seqs.len() >= 3, "{seqs:?}");
    let mut path = format!("/sessions/{session}?limit=2");
    let mut pages: Vec<(i64, i64)> = vec![];
    loop {
        let (st, _, body) = http(&srv.addr, "GET", &path, &[("Authorization", &bearer(&viewer))], b"");
        assert_eq!(st, 200, "{path}: {body}");
        let shown = body.split("<p class=\"pages\">records ").nth(1).expect("the page says what it shows");
        let (range, rest) = shown.split_once(" of ").expect("of");
        let (a, z) = range.split_once(" to ").expect("to");
        pages.push((a.parse().expect("seq"), z.parse().expect("seq")));
        assert!(rest.starts_with(&seqs.len().to_string()), "{rest}");
        if pages.len() > 1 {
            assert!(rest.contains(">from the start</a>"), "{rest}");
        }
        let Some(next) = rest.split("<a href=\"").find(|l| l.contains(">next 2</a>")) else { break };
        path = next.split('"').next().expect("href").replace("&amp;", "&");
        assert!(pages.len() < 100, "the pages never end: {pages:?}");
    }
    assert_eq!(pages.len(), seqs.len().div_ceil(2), "{pages:?}");
    let flat: Vec<i64> = pages.iter().flat_map(|&(a, z)| [a, z]).collect();
    let want: Vec<i64> = seqs.chunks(2).flat_map(|c| [c[0], c[c.len() - 1]]).collect();
    assert_eq!(flat, want, "each record on one page, in order");
    // A bad page is a 400, not a panic; a huge limit is held to the page's bound.
    assert_eq!(
        http(&srv.addr, "GET", &format!("/sessions/{session}?after=x"), &[("Authorization", &bearer(&viewer))], b"").0,
        400
    );
    let (st, _, body) = http(
        &srv.addr,
        "GET",
        &format!("/sessions/{session}?limit=999999999"),
        &[("Authorization", &bearer(&viewer))],
        b"",
    );
    assert_eq!(st, 200);
    assert!(body.contains(&format!("records {} to {} of", seqs[0], seqs[seqs.len() - 1])), "{body}");
}

/// Policies by identity (issue 16): an admin adds versions, a node runs under the newest, checked
/// and cached; a session still running when a newer version comes is marked stale; offline, the
/// cache serves (and says so); a changed cache or a replaced server key runs nothing.
#[test]
fn server_serves_policies_by_identity_signed_cached_and_marks_running_sessions_stale() {
    if !common::need_root() {
        return;
    }
    for who in common::BOTH {
        let dir = tempdir("server-test");
        policies_as(who, &dir, &Db::Sqlite(dir.0.join("server.db")));
    }
}

/// The same with the server on PostgreSQL (as root: the node's side is the same either way).
#[test]
fn server_on_postgres_serves_policies_by_identity_and_marks_running_sessions_stale() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start() else { return };
    let dir = tempdir("server-test");
    policies_as(Who::Root, &dir, &Db::Pg(pg.database(), dir.0.join("server.key")));
}

fn start_of(db: &Path, session: Option<&str>) -> serde_json::Value {
    let s = cordon_audit::Store::open_read_only(db).expect("log");
    let recs = s.records_after(0, 1 << 20).expect("records");
    let r = recs
        .iter()
        .rev()
        .find(|r| r.kind == "start" && session.is_none_or(|x| r.session == x))
        .expect("a start record");
    serde_json::from_str(&r.body).expect("json")
}

/// `db` in `dir` (its key `dir/server.key` either way).
fn policies_as(who: Who, dir: &TempDir, db: &Db) {
    let e = Env::new(who);
    let mut srv = Server::start_store(db, &loopback(), &[]);
    let (admin, node, viewer) = (srv.token("admin", "ops"), srv.token("node", "n1"), srv.token("viewer", "v"));
    let tf = e.root.join("node.token");
    std::fs::write(&tf, format!("{node}\n")).expect("token file");
    e.chown_all_if_nobody();
    let url = format!("http://{}", srv.addr);
    let ship = ["--server", url.as_str(), "--server-token-file", tf.to_str().expect("utf-8"), "--server-node", "n1"];
    let put = |srv: &Server, token: &str, id: &str, text: &str| {
        let (st, _, b) = http(
            &srv.addr,
            "PUT",
            &format!("/api/v1/policies/{id}"),
            &[("Authorization", &bearer(token))],
            text.as_bytes(),
        );
        (st, serde_json::from_str::<serde_json::Value>(&b).unwrap_or(serde_json::Value::String(b)))
    };
    let v1 = "version = 1\nname = \"ci-bot\"\nextends = [\"builtin:agent\"]\n";
    // Who may change policies, and what a policy must be.
    assert_eq!(put(&srv, &node, "ci-bot", v1).0, 403, "a node token");
    assert_eq!(put(&srv, &viewer, "ci-bot", v1).0, 403, "a viewer token");
    let (st, v) = put(&srv, &admin, "ci-bot", "version = 1\n[fs]\nread = 3\n");
    assert_eq!(st, 400);
    assert!(v["error"].as_str().is_some_and(|m| m.contains("ci-bot.toml:3")), "{v}");
    assert_eq!(put(&srv, &admin, ".hidden", v1).0, 400);
    assert_eq!(http(&srv.addr, "GET", "/api/v1/policies/ci-bot", &[("Authorization", &bearer(&node))], b"").0, 404);
    let (st, v) = put(&srv, &admin, "ci-bot", v1);
    assert_eq!((st, v["version"].as_i64()), (200, Some(1)), "{v}");

    // A run under the identity: version 1 from the server, the key pinned, the version recorded.
    let run = |extra: &[&str], script: &str| {
        let mut args = ship.to_vec();
        args.extend_from_slice(&["--identity", "ci-bot"]);
        args.extend_from_slice(extra);
        e.run_sh_with(&args, script, &[])
    };
    let o = run(&[], "echo ran-v1");
    assert_eq!(o.status.code(), Some(0), "{who:?}: {}", common::show(&o));
    assert!(common::out(&o).contains("ran-v1") && common::err(&o).contains("pinned"), "{}", common::show(&o));
    let db = e.root.join("audit.db");
    let id = &start_of(&db, None)["policy"]["identity"];
    // The served policy cannot be widened on the command line.
    let o = run(&["--allow-net", "example.com"], "touch widened");
    assert_ne!(o.status.code(), Some(0));
    assert!(common::err(&o).contains("cannot be used with"), "{}", common::show(&o));
    assert!(!e.ws.join("widened").exists());
    assert_eq!(
        (id["name"].as_str(), id["version"].as_i64(), id["from"].as_str()),
        (Some("ci-bot"), Some(1), Some("server")),
        "{id}"
    );

    // A session still running when version 2 comes is marked stale.
    let flag = e.ws.join("go");
    let mut args = vec!["run"];
    if who == Who::Nobody {
        args.push("--allow-degraded");
    }
    args.extend_from_slice(&ship);
    args.extend_from_slice(&["--identity", "ci-bot", "--", "/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.05; done"]);
    let mut c = e.command(env!("CARGO_BIN_EXE_cordon"));
    let mut running = c.args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
    let unfinished = "SELECT count(*) FROM sessions WHERE node = 'n1' AND outcome IS NULL AND start IS NOT NULL";
    let seen = common::wait_for(std::time::Duration::from_secs(30), || (srv.sql(unfinished) == 1).then_some(()));
    assert!(seen.is_some(), "the running session's start never reached the server");
    let (st, v) = put(&srv, &admin, "ci-bot", &format!("{v1}# v2\n"));
    assert_eq!((st, v["version"].as_i64(), v["stale_marked"].as_i64()), (200, Some(2), Some(1)), "{v}");
    std::fs::write(&flag, "").expect("go");
    let st = running.wait().expect("wait");
    assert!(st.success(), "{st:?}");
    assert_eq!(srv.sql("SELECT count(*) FROM stale WHERE node = 'n1' AND ran_version = 1 AND newer_version = 2"), 1);
    let (code, _, page) = http(&srv.addr, "GET", "/stale", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(code, 200);
    assert!(page.contains("<td>ci-bot</td><td>1</td><td>2</td>"), "{page}");
    let (code, _, page) = http(&srv.addr, "GET", "/policies", &[("Authorization", &bearer(&viewer))], b"");
    assert!(code == 200 && page.contains("<td>ops</td>"), "{page}");

    // The next run takes version 2; with the server down, the cached version 2, said.
    let o = run(&[], "echo ran-v2");
    assert_eq!(o.status.code(), Some(0), "{}", common::show(&o));
    assert_eq!(start_of(&db, None)["policy"]["identity"]["version"].as_i64(), Some(2));
    srv.kill();
    let o = run(&[], "echo ran-cached");
    assert_eq!(o.status.code(), Some(0), "{}", common::show(&o));
    assert!(common::err(&o).contains("running under the cached policy of `ci-bot`, version 2"), "{}", common::show(&o));
    assert_eq!(start_of(&db, None)["policy"]["identity"]["from"].as_str(), Some("cache"));

    // A cache whose text was changed runs nothing.
    let cache = std::fs::read_dir(cordon_audit::files::policy_cache_dir(&db))
        .expect("cache")
        .next()
        .expect("a server")
        .expect("entry")
        .path();
    let doc = cache.join("ci-bot.json");
    let orig = std::fs::read(&doc).expect("cached");
    let mut v: serde_json::Value = serde_json::from_slice(&orig).expect("json");
    v["text"] = serde_json::Value::String("version = 1\n[net]\negress = \"open\"\n".into());
    std::fs::write(&doc, v.to_string()).expect("tamper");
    let o = run(&[], "touch ran-tampered");
    assert_ne!(o.status.code(), Some(0));
    assert!(common::err(&o).contains("does not match its SHA-256"), "{}", common::show(&o));
    assert!(!e.ws.join("ran-tampered").exists());
    std::fs::write(&doc, &orig).expect("restore");

    // The same server key restored with only version 1 (an old backup, a replay): the node ran
    // version 2, so version 1 runs nothing.
    let dir3 = tempdir("server-test");
    std::fs::copy(dir.0.join("server.key"), dir3.0.join("server.key")).expect("the server's key");
    let srv3 = Server::start_on(&dir3.0, &srv.addr);
    assert_eq!(put(&srv3, &srv3.token("admin", "ops"), "ci-bot", v1).0, 200);
    std::fs::write(&tf, format!("{}\n", srv3.token("node", "n1"))).expect("token file");
    e.chown_all_if_nobody();
    let o = run(&[], "touch ran-older");
    assert_ne!(o.status.code(), Some(0));
    assert!(common::err(&o).contains("older than version 2"), "{}", common::show(&o));
    assert!(!e.ws.join("ran-older").exists());
    drop(srv3);

    // Another server (another key) at the same address: refused, naming the pinned key's file.
    let dir2 = tempdir("server-test");
    let srv2 = Server::start_on(&dir2.0, &srv.addr);
    let admin2 = srv2.token("admin", "ops");
    assert_eq!(put(&srv2, &admin2, "ci-bot", v1).0, 200);
    std::fs::write(&tf, format!("{}\n", srv2.token("node", "n1"))).expect("token file");
    let o = run(&[], "touch ran-other-key");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        common::err(&o).contains("pinned the server's key") && common::err(&o).contains("server.pub"),
        "{}",
        common::show(&o)
    );
    assert!(!e.ws.join("ran-other-key").exists());
    // The session cannot reach the cache.
    let o = e.run_sh_with(
        &["--allow-read", e.root.to_str().expect("utf-8")],
        &format!("cat {}/*.toml || echo unreadable", cache.display()),
        &[],
    );
    assert!(common::out(&o).contains("unreadable") && !common::out(&o).contains("version = 1"), "{}", common::show(&o));
}

/// A client that opens a connection and sends `first`, then nothing more.
fn stall(addr: &str, first: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(first).expect("send");
    s
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_by_server(s: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn server_bounds_its_connections_slow_headers_and_slow_bodies() {
    use std::time::{Duration, Instant};
    let dir = tempdir("server-test");
    let limits = ["--max-connections", "2", "--header-timeout", "2", "--request-timeout", "2"];
    let srv =
        Server::start_store(&Db::Sqlite(dir.0.join("server.db")), &format!("127.0.0.1:{}", fixed_port()), &limits);
    let (viewer, node) = (srv.token("viewer", "v"), srv.token("node", "n1"));
    let auth = bearer(&viewer);
    // Control: with free slots a request is answered at once.
    let t = Instant::now();
    assert_eq!(http(&srv.addr, "GET", "/metrics", &[("Authorization", &auth)], b"").0, 200);
    let direct = t.elapsed();

    // Two clients that send half a header (or nothing) hold both slots ...
    let t0 = Instant::now();
    let mut half = stall(&srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    let mut mute = stall(&srv.addr, b"");
    std::thread::sleep(Duration::from_millis(300));
    // ... so a third client's request waits (in the kernel's backlog) until the server closed them
    // for their header's lateness (2 s), then is answered.
    let (st, _, _) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &auth)], b"");
    let waited = t0.elapsed();
    assert_eq!(st, 200, "the third request is answered once a slot is free");
    assert!(waited >= Duration::from_millis(1500), "answered after {waited:?}: it did not wait for a slot");
    assert!(waited < Duration::from_secs(30), "answered only after {waited:?} (direct: {direct:?})");
    assert!(closed_by_server(&mut half, Duration::from_secs(10)), "a half-sent header's connection stays open");
    assert!(closed_by_server(&mut mute, Duration::from_secs(10)), "a silent connection stays open");

    // A body that stops coming: 408 after the request's bound, nothing stored.
    let mut slow = stall(
        &srv.addr,
        format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 1000\r\n\r\n{{\"node\":",
            bearer(&node)
        )
        .as_bytes(),
    );
    slow.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut raw = vec![];
    let _ = slow.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "a stalled body got: {text:?}");
    assert!(text.contains("longer than 2 s"), "{text}");
    assert_eq!(srv.sql("SELECT count(*) FROM records"), 0);
    // The server still serves.
    assert_eq!(http(&srv.addr, "GET", "/metrics", &[("Authorization", &auth)], b"").0, 200);
}

trait ChownIfNobody {
    fn chown_all_if_nobody(&self);
}

impl ChownIfNobody for Env {
    /// Files the test wrote for a `nobody` env become nobody's.
    fn chown_all_if_nobody(&self) {
        if self.who == Who::Nobody {
            self.chown_all();
        }
    }
}

fn hex(b: &[u8]) -> String {
    cordon_audit::hex(b)
}

/// Devbox spin-up latency: claims recorded in a node's log (start records with a `devbox` object,
/// as the daemon writes them, through cordon-audit's writer) arrive, and /devboxes shows each
/// snapshot's p50 and p99 against the goals, escaped; /metrics has the claims' histogram.
#[test]
fn server_shows_devbox_claim_latency_per_snapshot() {
    let dir = tempdir("server-test");
    devbox_claims(&dir, &Db::Sqlite(dir.0.join("server.db")));
}

/// The same on PostgreSQL (where a claim's fields are taken from its start record on arrival).
#[test]
fn server_on_postgres_shows_devbox_claim_latency_per_snapshot() {
    let Some(pg) = common::postgres::Cluster::start() else { return };
    let dir = tempdir("server-test");
    devbox_claims(&dir, &Db::Pg(pg.database(), dir.0.join("server.key")));
}

fn devbox_claims(dir: &TempDir, db: &Db) {
    let log = dir.0.join("node").join("audit.db");
    {
        let mut st = cordon_audit::Store::open(&log).expect("the node's log");
        for i in 0..40 {
            let (snap, ms, pool) = if i < 30 { ("snap<b>", 10.0 + i as f64, true) } else { ("ab12", 300.0, false) };
            // The pool as each claim found it: 4 set, fewer left ready as the claims go on.
            // snap<b>: a pool of 4, its newest claim (i = 29) left 0 ready, older ones more; ab12: a
            // pool of 6 whose claims found it empty, the newest (i = 39) saying 2 were ready again.
            let (size, ready) = if pool { (4, (29 - i.min(29)) % 4) } else { (6, if i == 39 { 2 } else { 0 }) };
            let body = serde_json::json!({"devbox": {"id": format!("d{i}"), "snapshot": snap, "latency_ms": ms, "from_pool": pool, "pool_size": size, "pool_ready": ready}});
            let id = format!("d{i}");
            st.append(&id, &[("start".to_string(), 1_764_000_000_000 + i * 1000, body)]).expect("append");
            st.seal(&id, 1_764_000_000_000 + i * 1000).expect("seal");
        }
    }
    let srv = Server::start_store(db, &loopback(), &[]);
    let (node, viewer) = (srv.token("node", "n1"), srv.token("viewer", "v"));
    assert_eq!(post(&srv, &node, &batch_of(&log, "n1")).0, 200);
    let (st, _, page) = http(&srv.addr, "GET", "/devboxes", &[("Authorization", &bearer(&viewer))], b"");
    assert_eq!(st, 200);
    assert!(page.contains("snap&lt;b&gt;") && !page.contains("snap<b>"), "{page}");
    // 30 warm claims of 10..39 ms: nearest-rank p50 24 ms, p99 39 ms; goals p50 ≤ 20: not met.
    assert!(page.contains("warm claims 30: p50 24.0 ms, p99 39.0 ms — goals not met"), "{page}");
    assert!(page.contains("made at claim: 10 (p50 300.0 ms"), "{page}");
    // Pool sizes, from each snapshot's newest claim: snap<b>'s last (i = 29) left 0 ready of 4,
    // ab12's last (i = 39) 2 of 6 (an older claim's numbers would show 1, 2 or 3 of 4, or 0 of 6).
    assert!(page.contains("<td class=\"mono\">n1</td><td>4</td><td>0</td>"), "{page}");
    assert!(page.contains("<td class=\"mono\">n1</td><td>6</td><td>2</td>"), "{page}");
    let (_, _, m) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&viewer))], b"");
    // Each pool's newest claim sets its gauges; "snap<b>" is not a snapshot's hash.
    let pools = [
        "cordon_server_devbox_pool_size{node=\"n1\",snapshot=\"other\"} 4",
        "cordon_server_devbox_pool_ready{node=\"n1\",snapshot=\"other\"} 0",
        "cordon_server_devbox_pool_size{node=\"n1\",snapshot=\"ab12\"} 6",
        "cordon_server_devbox_pool_ready{node=\"n1\",snapshot=\"ab12\"} 2",
    ];
    let claims = [
        "cordon_server_devbox_claim_duration_seconds_count{from_pool=\"true\"} 30",
        "cordon_server_devbox_claim_duration_seconds_count{from_pool=\"false\"} 10",
    ];
    for line in pools.iter().chain(&claims) {
        assert!(m.lines().any(|l| l == *line), "no `{line}` in\n{m}");
    }
    // The gauges come from the database: a server that stored none of these claims (another of a
    // fleet, or this one restarted) shows the same pools; the claim histogram counts what a
    // process stored itself, as a Prometheus counter does.
    drop(srv);
    let srv = Server::start_store(db, &loopback(), &[]);
    let viewer = srv.token("viewer", "v2");
    let (_, _, m) = http(&srv.addr, "GET", "/metrics", &[("Authorization", &bearer(&viewer))], b"");
    for line in pools {
        assert!(m.lines().any(|l| l == line), "the next server: no `{line}` in\n{m}");
    }
}

/// `cordon audit ship --follow` started as the env's user with a piped stdout and stderr; returns it
/// once it said it follows, and its stderr's lines as they come.
fn follower(e: &Env, ship: &[&str], interval: &str, more: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let db = e.root.join("audit.db");
    let mut args = vec!["audit", "ship", "--follow", "--interval", interval, "--audit", db.to_str().expect("utf-8")];
    args.extend_from_slice(ship);
    args.extend_from_slice(more);
    let mut c = e.command(CORDON);
    let mut child = c.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the follower");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the follower's first line");
    assert!(line.starts_with("following "), "the follower did not start: {line:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (child, rx)
}

/// A child killed (SIGKILL, which a watching follower does not ignore) and reaped on drop, so that
/// a failed assertion leaves no process behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The records in the env's log.
fn local_records(e: &Env) -> i64 {
    let db = e.root.join("audit.db");
    cordon_audit::Store::open_read_only(&db).expect("log").records_after(0, 1 << 20).expect("records").len() as i64
}

/// A follower ships a log as sessions write it: while the server is down it says so once and keeps
/// the records; once the server is back everything arrives within seconds; told to stop (SIGTERM)
/// it ships once more. Watching a process, it ignores SIGTERM and ends only after that process,
/// with a last shipping.
#[test]
fn server_audit_ship_follow_delivers_as_the_log_grows_and_once_more_at_its_end() {
    if !common::need_root() {
        return;
    }
    for who in common::BOTH {
        let e = Env::new(who);
        let dir = tempdir("server-test");
        let mut srv = Server::start(&dir.0);
        let tf = e.root.join("node.token");
        std::fs::write(&tf, srv.token("node", "n1") + "\n").expect("token file");
        e.chown_all_if_nobody();
        let url = format!("http://{}", srv.addr);
        let ship =
            ["--server", url.as_str(), "--server-token-file", tf.to_str().expect("utf-8"), "--server-node", "n1"];
        srv.kill();
        let mut watched = Reaped(Command::new("sleep").arg("600").spawn().expect("sleep"));
        let pid = watched.0.id().to_string();
        let (f, lines) = follower(&e, &ship, "200ms", &["--watch-pid", &pid]);
        let mut f = Reaped(f);
        for i in 0..2 {
            let o = e.run_sh(&format!("echo down {i}"));
            assert!(o.status.success(), "{who:?}: {}", common::show(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(700));
        let srv = Server::start_on(&dir.0, &srv.addr);
        let all_in = |srv: &Server, e: &Env| {
            common::wait_for(std::time::Duration::from_secs(15), || {
                (stored(srv, "n1") == local_records(e)).then_some(())
            })
        };
        assert!(
            all_in(&srv, &e).is_some(),
            "{who:?}: the server holds {} of {}",
            stored(&srv, "n1"),
            local_records(&e)
        );
        let o = e.run_sh("echo up");
        assert!(o.status.success(), "{who:?}: {}", common::show(&o));
        assert!(all_in(&srv, &e).is_some(), "{who:?}: a session written while following did not arrive");
        // Watching a process, a stop signal does not end it: the watched process's end does.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(f.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .expect("SIGTERM the follower");
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(f.0.try_wait().expect("try_wait").is_none(), "{who:?}: the follower ended on SIGTERM while watching");
        let o = e.run_sh("echo last");
        assert!(o.status.success(), "{who:?}: {}", common::show(&o));
        let _ = watched.0.kill();
        let _ = watched.0.wait();
        let st = common::wait_for(std::time::Duration::from_secs(15), || f.0.try_wait().expect("try_wait"));
        let said: Vec<String> = lines.try_iter().collect();
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{who:?}: {said:#?}");
        assert_eq!(stored(&srv, "n1"), local_records(&e), "{who:?}: the last session was not shipped at the end");
        assert_eq!(srv.sql("SELECT count(*) FROM sessions WHERE node = 'n1' AND sealed = 1"), 4);
        let down = said.iter().filter(|l| l.contains("NOT delivered")).count();
        assert_eq!(down, 1, "{who:?}: an unreachable server is said once: {said:#?}");
        assert!(said.iter().any(|l| l.contains("reached again")), "{who:?}: {said:#?}");
        assert!(said.last().is_some_and(|l| l.contains("stopped following")), "{who:?}: {said:#?}");

        // Without a watched process, SIGTERM ends it after a last shipping.
        let (f, _lines) = follower(&e, &ship, "1h", &[]);
        let mut f = Reaped(f);
        let o = e.run_sh("echo after");
        assert!(o.status.success(), "{who:?}: {}", common::show(&o));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(f.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .expect("SIGTERM the follower");
        let st = f.0.wait().expect("wait");
        assert_eq!(st.code(), Some(0), "{who:?}");
        assert_eq!(stored(&srv, "n1"), local_records(&e), "{who:?}: SIGTERM's last shipping missed records");
    }
}

/// `cordon gateway --server`: the gateway's calls and its servers' sessions reach the server (the
/// follower beside it ships once more after the gateway ends); a --server that cordon would not
/// ship to refuses the gateway before any server starts.
#[test]
fn server_gateway_ships_its_tool_calls_and_a_bad_server_refuses_it_first() {
    if !common::need_root() {
        return;
    }
    let py = PathBuf::from("/opt/cordon-test/mcp-venv/bin/python");
    assert!(py.exists(), "{} is missing: run ./scripts/setup-tests", py.display());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/gateway");
    for who in common::BOTH {
        let e = Env::new(who);
        for f in ["server.py", "client.py"] {
            std::fs::copy(fixtures.join(f), e.ws.join(f)).expect("fixture");
        }
        let cfg = e.write_policy(
            "gw.toml",
            &format!(
                "pinning = \"off\"\n[servers.py]\ncommand = [\"{}\", \"server.py\"]\nworkspace = \"home/ws\"\n",
                py.display()
            ),
        );
        let dir = tempdir("server-test");
        let srv = Server::start(&dir.0);
        let tf = e.root.join("node.token");
        std::fs::write(&tf, srv.token("node", "gw1") + "\n").expect("token file");
        e.chown_all_if_nobody();
        let gateway = |server: &str| {
            let mut c = e.command(py.to_str().expect("utf-8"));
            c.arg(e.ws.join("client.py")).args(["--", CORDON, "gateway", "--stdio", "--config"]).arg(&cfg);
            c.arg("--audit").arg(e.root.join("audit.db"));
            c.args(["--server", server, "--server-token-file"]).arg(&tf).args(["--server-node", "gw1"]);
            if who == Who::Nobody {
                c.arg("--allow-degraded");
            }
            let mut child =
                c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("client");
            let calls = serde_json::json!([{"tool": "py__echo", "args": {"text": "shipped"}}]);
            child.stdin.take().expect("stdin").write_all(calls.to_string().as_bytes()).expect("calls");
            child.wait_with_output().expect("wait")
        };
        let o = gateway(&format!("http://{}", srv.addr));
        assert!(o.status.success(), "{who:?}: {}", common::show(&o));
        assert!(common::out(&o).contains("shipped"), "{who:?}: {}", common::show(&o));
        let all_in = common::wait_for(std::time::Duration::from_secs(15), || {
            (stored(&srv, "gw1") == local_records(&e)).then_some(())
        });
        assert!(all_in.is_some(), "{who:?}: the server holds {} of {}", stored(&srv, "gw1"), local_records(&e));
        assert_eq!(srv.sql("SELECT count(*) FROM records WHERE node = 'gw1' AND kind = 'tool_call'"), 1, "{who:?}");
        assert!(srv.sql("SELECT count(*) FROM sessions WHERE node = 'gw1' AND sealed = 1") >= 2, "{who:?}");

        let before = local_records(&e);
        let o = gateway("http://192.0.2.1:80");
        let text = common::show(&o);
        assert!(text.contains("not a loopback address") && text.contains("cannot ship"), "{who:?}: {text}");
        assert_eq!(local_records(&e), before, "{who:?}: the refused gateway recorded something: {text}");
    }
}

/// The fleet: two `cordon server`s on one PostgreSQL database, one node's batches sent to each in
/// turn and to both at once. Every record is stored once, the chain intact; both dashboards show
/// the same; a tampered batch is refused by either and each refusal recorded once.
#[test]
fn two_servers_on_one_postgres_store_each_record_once() {
    if !common::need_root() {
        return;
    }
    let Some(pg) = common::postgres::Cluster::start() else { return };
    let dir = tempdir("server-test");
    let db = Db::Pg(pg.database(), dir.0.join("server.key"));
    let (a, b) = (Server::start_store(&db, &loopback(), &[]), Server::start_store(&db, &loopback(), &[]));
    let node = a.token("node", "n1");
    let viewer = b.token("viewer", "v");
    let e = recorded(3);
    let all = batch_of(&e.root.join("audit.db"), "n1");
    let n = all.records.len();
    let chunks: Vec<Batch> = all.records.chunks(3).map(|c| Batch { records: c.to_vec(), ..all.clone() }).collect();
    let mut accepted = 0;
    for (i, c) in chunks.iter().enumerate() {
        if i % 2 == 0 {
            // In turn: this chunk to one server, then again (a retry) to the other.
            let (first, second) = if i % 4 == 0 { (&a, &b) } else { (&b, &a) };
            let (st, v) = post(first, &node, c);
            assert_eq!(st, 200, "{v}");
            accepted += v["accepted"].as_i64().unwrap_or(0);
            let (st, v) = post(second, &node, c);
            assert_eq!((st, v["accepted"].as_i64()), (200, Some(0)), "a retry on the other server: {v}");
        } else {
            // At once: the same chunk to both; one stores it, the other finds it stored. The first
            // time, the node's lock is held from a third session while both requests arrive, so
            // that both are inside their transactions together (without the lock both would judge
            // against the same tail and one would fail on the other's rows).
            let url = match &db {
                Db::Pg(url, _) => url.clone(),
                Db::Sqlite(_) => unreachable!("a PostgreSQL test"),
            };
            let (va, vb) = std::thread::scope(|s| {
                let holder = (i == 1).then(|| {
                    let h = s.spawn(|| {
                        common::postgres::query(
                            &url,
                            "SELECT pg_advisory_lock(1668218882, hashtext('n1')), pg_sleep(2)",
                        )
                    });
                    let held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted";
                    let up = common::wait_for(std::time::Duration::from_secs(10), || {
                        (common::postgres::count(&url, held) > 0).then_some(())
                    });
                    assert!(up.is_some(), "the third session never held the node's lock");
                    h
                });
                let ta = s.spawn(|| post(&a, &node, c));
                let tb = s.spawn(|| post(&b, &node, c));
                if let Some(h) = holder {
                    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
                    let both = common::wait_for(std::time::Duration::from_secs(10), || {
                        (common::postgres::count(&url, waiting) == 2).then_some(())
                    });
                    assert!(both.is_some(), "both servers should wait on the node's lock");
                    h.join().expect("holder").expect("the lock holder's psql");
                }
                (ta.join().expect("a"), tb.join().expect("b"))
            });
            assert_eq!((va.0, vb.0), (200, 200), "{} {}", va.1, vb.1);
            let got = [&va.1, &vb.1].map(|v| v["accepted"].as_i64().unwrap_or(-1));
            assert_eq!(got.iter().sum::<i64>(), c.records.len() as i64, "stored by one: {} {}", va.1, vb.1);
            accepted += got.iter().sum::<i64>();
        }
    }
    assert_eq!(accepted, n as i64, "every record accepted once, over both servers");
    assert_eq!(stored(&a, "n1"), n as i64);
    assert_eq!(a.sql("SELECT count(DISTINCT seq) FROM records WHERE node = 'n1'"), n as i64);
    assert_eq!(a.sql("SELECT tail_seq FROM nodes WHERE name = 'n1'"), n as i64);
    let held = stored_records(&a, "n1");
    for (r, (payload, hash)) in all.records.iter().zip(&held) {
        assert_eq!((payload.as_str(), hash.as_str()), (r.body.as_str(), r.hash.as_str()));
    }
    // Counted once: three sessions, each with its records once.
    assert_eq!(a.sql("SELECT count(*) FROM sessions WHERE node = 'n1' AND sealed AND outcome = 'exited'"), 3);
    assert_eq!(a.sql("SELECT sum(records) FROM sessions WHERE node = 'n1'"), n as i64);
    // Either dashboard shows the same chain held and verified.
    let row = format!("records 1..{n}: hash chain verified");
    for srv in [&a, &b] {
        let (st, _, page) = http(&srv.addr, "GET", "/", &[("Authorization", &bearer(&viewer))], b"");
        assert_eq!(st, 200);
        assert!(page.contains(&row), "no `{row}` in\n{page}");
    }
    // A tampered batch: refused by either server, each refusal recorded once, nothing stored.
    let mut t = Batch { records: all.records[..2].to_vec(), ..all.clone() };
    t.records[1].body = t.records[1].body.replacen('{', "{\"x\":1,", 1);
    for (i, srv) in [&a, &b].into_iter().enumerate() {
        let (st, v) = post(srv, &node, &t);
        assert_eq!(st, 409, "{v}");
        assert_eq!(a.sql("SELECT count(*) FROM refusals WHERE node = 'n1'"), i as i64 + 1);
        assert_eq!(b.sql("SELECT coalesce(sum(count), 0)::bigint FROM refusal_counts WHERE node = 'n1'"), i as i64 + 1);
    }
    assert_eq!(stored(&b, "n1"), n as i64);
}
