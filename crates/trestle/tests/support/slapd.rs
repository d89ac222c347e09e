//! A private OpenLDAP server for the LDAP tests: Debian's `slapd` with
//! its own `slapd.conf`, database directory and port (never the system's
//! service), answering unauthenticated binds (a DN with an empty
//! password) with success as some servers do, optionally with TLS (a CA and a server certificate made with
//! openssl), killed when dropped. `./scripts/test.sh` installs slapd and
//! ldap-utils when missing.
#![allow(dead_code)]

use crate::common::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory's suffix.
pub const SUFFIX: &str = "dc=uni,dc=example";
/// Its root DN and password (what the test loads entries with).
pub const ROOT_DN: &str = "cn=admin,dc=uni,dc=example";
const ROOT_PW: &str = "root-secret";
/// The service account Trestle binds as, and its password.
pub const SERVICE_DN: &str = "cn=trestle,dc=uni,dc=example";
pub const SERVICE_PW: &str = "service-secret";

/// A running slapd.
pub struct Slapd {
    child: Child,
    pub dir: tempfile::TempDir,
    /// Plain (StartTLS-capable) port.
    pub port: u16,
    /// LDAPS port, when started with TLS.
    pub ldaps_port: Option<u16>,
}

fn slapd_bin() -> &'static str {
    let bin = "/usr/sbin/slapd";
    assert!(
        Path::new(bin).exists() && Path::new("/usr/bin/ldapadd").exists(),
        "the LDAP tests need Debian's slapd and ldap-utils (./scripts/test.sh installs them: apt-get install slapd ldap-utils)"
    );
    bin
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes a CA and a server certificate for 127.0.0.1 in `dir`; returns
/// (CA, certificate, key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test LDAP CA",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.pem")));
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

impl Slapd {
    /// Starts slapd (with `memberOf` maintained by the memberof overlay;
    /// with TLS on both ports when `tls`) and loads the base entries and
    /// the service account.
    pub fn start(tls: bool) -> Slapd {
        let bin = slapd_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).unwrap();
        let mut conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {pid}\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             allow bind_anon_dn\n",
            pid = dir.path().join("slapd.pid").display()
        );
        if tls {
            let (ca, cert, key) = make_certs(dir.path());
            conf.push_str(&format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                ca.display(),
                cert.display(),
                key.display()
            ));
        }
        conf.push_str(&format!(
            "database mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}\n\
             directory {}\noverlay memberof\n",
            db.display()
        ));
        let conf_path = dir.path().join("slapd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let port = free_port();
        let ldaps_port = tls.then(free_port);
        let mut urls = format!("ldap://127.0.0.1:{port}/");
        if let Some(p) = ldaps_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let log = std::fs::File::create(dir.path().join("slapd.log")).unwrap();
        let child = Command::new(bin)
            .arg("-f")
            .arg(&conf_path)
            .args(["-h", &urls, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start slapd");
        let s = Slapd {
            child,
            dir,
            port,
            ldaps_port,
        };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("ldapsearch")
                .args(["-x", "-H", &s.url(), "-b", "", "-s", "base"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|st| st.success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < end,
                "slapd did not start: {}",
                std::fs::read_to_string(s.dir.path().join("slapd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s.add(&format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Uni\ndc: uni\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: trestle\nuserPassword: {SERVICE_PW}\n"
        ));
        s
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The CA certificate of a TLS directory.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn ldap_tool(&self, tool: &str, args: &[&str], stdin: &str) {
        use std::io::Write;
        let mut child = Command::new(tool)
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldap tool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}\n{stdin}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds entries (LDIF).
    pub fn add(&self, ldif: &str) {
        self.ldap_tool("ldapadd", &[], ldif);
    }

    /// Applies an LDIF change.
    pub fn modify(&self, ldif: &str) {
        self.ldap_tool("ldapmodify", &[], ldif);
    }

    /// Deletes an entry.
    pub fn delete(&self, dn: &str) {
        self.ldap_tool("ldapdelete", &[dn], "");
    }

    /// Adds a posixAccount/inetOrgPerson user under ou=people.
    pub fn add_user(&self, uid: &str, uid_number: u32, password: &str) {
        self.add(&format!(
            "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             uid: {uid}\ncn: {uid} Example\nsn: Example\nmail: {uid}@uni.example\n\
             uidNumber: {uid_number}\ngidNumber: {uid_number}\nhomeDirectory: /home/{uid}\n\
             userPassword: {password}\n"
        ));
    }

    /// Adds a groupOfNames under ou=groups with these members (uids).
    pub fn add_group(&self, cn: &str, members: &[&str]) {
        let mut ldif =
            format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
        for m in members {
            ldif.push_str(&format!("member: {}\n", user_dn(m)));
        }
        self.add(&ldif);
    }

    /// Removes a member (uid) from a group.
    pub fn remove_member(&self, cn: &str, uid: &str) {
        self.modify(&format!(
            "dn: cn={cn},ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: {}\n",
            user_dn(uid)
        ));
    }
}

/// The DN of user `uid`.
pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
