//! A PostgreSQL URL as the server shows it (its password never printed) and a failed connection
//! as an error with a hint: the URL often carries a password, and logs outlive it.

/// The URL without its password: `postgres://user:secret@host/db?password=x` becomes
/// `postgres://user:***@host/db?password=***`.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // The userinfo ends at the last '@' before the query: a password may hold an unescaped '/'.
    let before_query = rest.split('?').next().unwrap_or(rest);
    let host_from = before_query.rfind('@').map_or(0, |i| i + 1);
    let auth_end = rest[host_from..].find(['/', '?']).map_or(rest.len(), |i| host_from + i);
    let (authority, tail) = rest.split_at(auth_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Why a connection failed, with what to check.
pub fn hint(config: &postgres::Config, e: &postgres::Error) -> String {
    let at = where_(config);
    if let Some(db) = e.as_db_error() {
        return match db.code().code() {
            "28P01" | "28000" => format!(
                "authentication failed\n  hint: check the user and password in the URL (and pg_hba.conf) for {at}"
            ),
            "3D000" => {
                format!("{}\n  hint: create the database first (createdb), or name one that exists", db.message())
            }
            _ => db.message().to_string(),
        };
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) | Some(std::io::ErrorKind::NotFound) => {
            format!("{e}\n  hint: is PostgreSQL running at {at}?")
        }
        _ => format!("{e}\n  hint: is PostgreSQL reachable at {at}?"),
    }
}

fn where_(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(h)) => format!("{h}:{port}"),
        Some(Host::Unix(p)) => format!("{}/.s.PGSQL.{port}", p.display()),
        None => format!("localhost:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(
            redact("postgresql://u@h/db?password=s3cret&sslmode=off"),
            "postgresql://u@h/db?password=***&sslmode=off"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        // An unescaped '/' or '#' in the password (base64 makes them) is still hidden.
        assert_eq!(redact("postgres://u:a/b#c@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u:a/b@h/db?password=x"), "postgres://u:***@h/db?password=***");
        assert_eq!(redact("postgres:///db?host=/tmp&password=x"), "postgres:///db?host=/tmp&password=***");
    }
}
