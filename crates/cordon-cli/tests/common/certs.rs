//! Certificates for the tests' TLS servers (a PostgreSQL cluster: common/postgres.rs; an OTLP
//! receiver: tests/otlp.rs), made with the openssl CLI: a CA of the test's own and a server
//! certificate for 127.0.0.1 signed by it. Nothing here is trusted by the host: the CA's PEM is
//! handed to the client by path.

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

/// A certificate for 127.0.0.1 (a TLS server's), signed by the CA `ca` made by [`ca`] in `dir`:
/// `NAME.crt` and its key `NAME.key` in `dir`.
pub fn leaf(dir: &Path, ca: &str, name: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the certificate's extensions");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]].concat());
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "30",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(crt), dir.join(key))
}

/// A client certificate for the user `cn` (its common name), signed by the CA `ca` made by [`ca`]
/// in `dir`: `NAME.crt` and its key `NAME.key` (mode 0600) in `dir`.
pub fn client(dir: &Path, ca: &str, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write the certificate's extensions");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")]].concat());
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let sign = ["x509", "-req", "-in", &csr, "-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial", "-out", &crt];
    openssl(dir, &[&sign[..], &["-days", "30", "-extfile", &ext]].concat());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600)).expect("chmod the key");
    (dir.join(crt), dir.join(key))
}

/// The CA and, in `data` (the cluster's data dir), server.crt and server.key for 127.0.0.1 with
/// `ssl = on` in its postgresql.conf and a pg_hba.conf that lets TCP in only over TLS. Returns the
/// CA's PEM. `client_cert`: TCP connections must also present a client certificate signed by the
/// CA whose common name is the user (pg_hba `cert`; the CA is the cluster's ssl_ca_file).
pub fn for_postgres(dir: &Path, data: &Path, client_cert: bool) -> PathBuf {
    let ca_pem = ca(dir, "ca");
    leaf(dir, "ca", "server");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(dir.join(f), data.join(f)).expect("copy the server's certificate");
        owned_by_cluster(&data.join(f));
    }
    let mut conf =
        std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).expect("postgresql.conf");
    std::io::Write::write_all(&mut conf, b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        .expect("write postgresql.conf");
    let method = if client_cert {
        std::fs::copy(&ca_pem, data.join("ca.pem")).expect("copy the CA");
        owned_by_cluster(&data.join("ca.pem"));
        std::io::Write::write_all(&mut conf, b"ssl_ca_file = 'ca.pem'\n").expect("write postgresql.conf");
        "cert"
    } else {
        "trust"
    };
    std::fs::write(
        data.join("pg_hba.conf"),
        format!("local all all trust\nhostssl all all 127.0.0.1/32 {method}\nhost all all 127.0.0.1/32 reject\n"),
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
