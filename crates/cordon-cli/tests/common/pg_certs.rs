//! Certificates for a test cluster's TLS (common/postgres.rs), made with the openssl CLI: a CA of
//! the test's own and a server certificate for 127.0.0.1 signed by it. Nothing here is trusted by
//! the host: the CA's PEM is handed to the client by path.

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let o =
        Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl (Debian's openssl package)");
    assert!(o.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
}

/// A CA (P-256, valid for 30 days) in `dir`: its key `NAME.key` and certificate `NAME.pem`.
pub fn ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=cordon test CA {name}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "30",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// The CA and, in `data` (the cluster's data dir), server.crt and server.key for 127.0.0.1 with
/// `ssl = on` in its postgresql.conf and a pg_hba.conf that lets TCP in only over TLS. Returns the
/// CA's PEM.
pub fn make(dir: &Path, data: &Path) -> PathBuf {
    let ca_pem = ca(dir, "ca");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
    );
    for f in ["server.crt", "server.key"] {
        std::fs::copy(dir.join(f), data.join(f)).expect("copy the server's certificate");
        owned_by_cluster(&data.join(f));
    }
    let mut conf =
        std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).expect("postgresql.conf");
    std::io::Write::write_all(&mut conf, b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        .expect("write postgresql.conf");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
    )
    .expect("write pg_hba.conf");
    owned_by_cluster(&data.join("pg_hba.conf"));
    ca_pem
}

/// Mode 0600, owned by the cluster's user (nobody when the tests run as root): postgres refuses a
/// key others can read.
fn owned_by_cluster(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(super::NOBODY)), None).expect("chown");
    }
}
