//! A PostgreSQL URL as the server shows it (its password never printed) and a failed connection
//! as an error with a hint: the URL often carries a password, and logs outlive it.

/// The URL without its password: `postgres://user:secret@host/db?password=x` becomes
/// `postgres://user:***@host/db?password=***` (`sslpassword` too, and a parameter name written
/// %-escaped). Where the URL is ambiguous, more is hidden, never less.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // The userinfo ends at the last '@': a password may hold unescaped '/', '?', '#' and '@'
    // (the postgres crate reads it so). A '@' in a query value then only hides more.
    let (user, after) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let user = match user {
        Some(u) => match u.split_once(':') {
            Some((name, _)) => format!("{}:***@", mask_query(name)),
            None => format!("{}@", mask_query(u)),
        },
        None => String::new(),
    };
    format!("{scheme}://{user}{}", mask_query(after))
}

/// `password` and `sslpassword` values hidden in the query part of `s`, if it has one.
fn mask_query(s: &str) -> String {
    let Some((path, query)) = s.split_once('?') else { return s.to_string() };
    let q: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if matches!(crate::pg_tls::decode(k).to_ascii_lowercase().as_str(), "password" | "sslpassword") =>
            {
                format!("{k}=***")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
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
        // Found by a hostile trial: each of these printed the secret.
        assert_eq!(
            redact("postgres://u@h/db?sslrootcert=c&sslpassword=k"),
            "postgres://u@h/db?sslrootcert=c&sslpassword=***"
        );
        assert_eq!(redact("postgres://u@h:1/db?p%61ssword=X"), "postgres://u@h:1/db?p%61ssword=***");
        assert!(!redact("postgres://u:PW?SECRET@127.0.0.1:1/db").contains("SECRET"));
        assert!(!redact("postgres://h/db?password=x&application_name=a@b").contains("password=x"));
    }
}
