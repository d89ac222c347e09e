//! The secrets keyring: AES-256-GCM keys with ids, the newest sealing new
//! secrets and every one opening what it sealed, so that several servers
//! can decrypt during a rotation. A keyring is a text file (mode 0600)
//! with one key a line, `ID BASE64-KEY`, the last line the current key;
//! `#` starts a comment. Losing every copy of it loses every stored
//! secret (webhook URLs, SMTP passwords, signing secrets): back it up with
//! the database, but not in the same place.
//!
//! A sealed secret is `v1:ID:BASE64(nonce || ciphertext || tag)`, with
//! the key id as associated data so that a sealed value cannot be passed
//! off under another key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::path::Path;

/// Errors of the keyring.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The keyring file or text is not valid.
    #[error("invalid keyring: {0}")]
    Invalid(String),
    /// Reading or writing the keyring failed.
    #[error("keyring file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// A sealed value names a key the keyring does not have.
    #[error("secret sealed under key `{0}`, which this keyring does not have")]
    UnknownKey(String),
    /// A sealed value does not open (damaged, or another key's).
    #[error("secret cannot be opened: damaged or sealed under another key")]
    Damaged,
    /// The system random source failed.
    #[error("no randomness available")]
    Random,
}

/// A key id and its key.
struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keyring: every key, the last one current.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| SecretError::Random)?;
    Ok(b)
}

/// A new key line (`ID BASE64`), its id made of the time and randomness.
fn new_line(now_ms: i64) -> Result<String, SecretError> {
    let key: [u8; 32] = random()?;
    let tag: [u8; 3] = random()?;
    Ok(format!(
        "k{}-{} {}",
        now_ms / 1000,
        hex::encode(tag),
        STANDARD.encode(key)
    ))
}

impl Keyring {
    /// Parses keyring text (lines `ID BASE64-KEY`; `;` also separates
    /// keys, for an environment variable).
    pub fn parse(text: &str) -> Result<Keyring, SecretError> {
        let mut keys = Vec::new();
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(';'));
        for line in entries {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (id, b64) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| SecretError::Invalid("a line is `ID BASE64-KEY`".into()))?;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(SecretError::Invalid(format!("bad key id `{id}`")));
            }
            let raw = STANDARD
                .decode(b64.trim())
                .map_err(|_| SecretError::Invalid(format!("key `{id}` is not base64")))?;
            if raw.len() != 32 {
                return Err(SecretError::Invalid(format!(
                    "key `{id}` has {} bytes, not 32",
                    raw.len()
                )));
            }
            if keys.iter().any(|k: &Key| k.id == id) {
                return Err(SecretError::Invalid(format!("key `{id}` appears twice")));
            }
            let key = UnboundKey::new(&AES_256_GCM, &raw)
                .map_err(|_| SecretError::Invalid(format!("key `{id}` is unusable")))?;
            keys.push(Key {
                id: id.to_string(),
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(SecretError::Invalid("no keys".into()));
        }
        Ok(Keyring { keys })
    }

    /// Reads a keyring file.
    pub fn load(path: &Path) -> Result<Keyring, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|error| SecretError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Keyring::parse(&text)
    }

    /// Reads the keyring file at `path`, first creating it (mode 0600,
    /// one new key) when it does not exist (`trestle up`).
    pub fn load_or_create(path: &Path, now_ms: i64) -> Result<Keyring, SecretError> {
        if !path.exists() {
            let text = format!(
                "# Trestle secrets keyring: back it up, without it stored secrets are lost.\n{}\n",
                new_line(now_ms)?
            );
            write_private(path, &text)?;
        }
        Keyring::load(path)
    }

    /// Adds a new current key to the keyring file at `path` (keeping the
    /// old ones, so that secrets sealed under them still open) and
    /// returns the keyring; its id is the new current id.
    pub fn add_key(path: &Path, now_ms: i64) -> Result<Keyring, SecretError> {
        let mut text = std::fs::read_to_string(path).map_err(|error| SecretError::Io {
            path: path.display().to_string(),
            error,
        })?;
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&new_line(now_ms)?);
        text.push('\n');
        // Parse before writing: a damaged file is not made worse.
        Keyring::parse(&text)?;
        write_private(path, &text)?;
        Keyring::load(path)
    }

    /// The id of the key new secrets are sealed under.
    pub fn current_id(&self) -> &str {
        self.keys.last().map(|k| k.id.as_str()).unwrap_or("")
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Seals `plain` under the current key.
    pub fn seal(&self, plain: &[u8]) -> Result<String, SecretError> {
        let k = self
            .keys
            .last()
            .ok_or_else(|| SecretError::Invalid("no keys".into()))?;
        let nonce_bytes: [u8; NONCE_LEN] = random()?;
        let mut buf = plain.to_vec();
        k.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(k.id.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Damaged)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("v1:{}:{}", k.id, STANDARD.encode(out)))
    }

    /// The key id a sealed value names.
    pub fn key_of(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("v1"), Some(id), Some(_)) => Some(id),
            _ => None,
        }
    }

    /// Opens a sealed value.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SecretError::Damaged);
        };
        let k = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let raw = STANDARD.decode(b64).map_err(|_| SecretError::Damaged)?;
        if raw.len() < NONCE_LEN {
            return Err(SecretError::Damaged);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Damaged)?;
        let mut buf = body.to_vec();
        let plain = k
            .key
            .open_in_place(nonce, Aad::from(k.id.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Damaged)?;
        Ok(plain.to_vec())
    }
}

/// Writes `text` to `path` readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), SecretError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error| SecretError::Io {
        path: path.display().to_string(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seals_open_across_a_rotation_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/keyring");
        let k1 = Keyring::load_or_create(&path, 1_000).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = k1.seal(b"https://hooks.slack.com/services/T/B/X").unwrap();
        assert!(!sealed.contains("hooks"));
        assert_eq!(Keyring::key_of(&sealed), Some(k1.current_id()));
        assert_eq!(
            k1.open(&sealed).unwrap(),
            b"https://hooks.slack.com/services/T/B/X"
        );
        assert_ne!(
            k1.seal(b"x").unwrap(),
            k1.seal(b"x").unwrap(),
            "fresh nonces"
        );

        let k2 = Keyring::add_key(&path, 2_000).unwrap();
        assert_eq!(k2.ids().len(), 2);
        assert_ne!(k2.current_id(), k1.current_id());
        assert_eq!(
            k2.open(&sealed).unwrap(),
            b"https://hooks.slack.com/services/T/B/X"
        );
        let resealed = k2.seal(b"y").unwrap();
        assert!(matches!(
            k1.open(&resealed),
            Err(SecretError::UnknownKey(_))
        ));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Under another key id, or altered: refused.
        let b64 = sealed.rsplit(':').next().unwrap();
        let forged = format!("v1:{}:{b64}", k2.current_id());
        assert!(matches!(k2.open(&forged), Err(SecretError::Damaged)));
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[20] ^= 1;
        let tampered = format!("v1:{}:{}", k1.current_id(), STANDARD.encode(raw));
        assert!(matches!(k2.open(&tampered), Err(SecretError::Damaged)));
        assert!(matches!(k2.open("garbage"), Err(SecretError::Damaged)));
    }

    #[test]
    fn keyring_text_is_checked() {
        let key = STANDARD.encode([1u8; 32]);
        let k = Keyring::parse(&format!("# c\na {key}; b {key}")).unwrap();
        assert_eq!(k.ids(), ["a", "b"]);
        assert_eq!(k.current_id(), "b");
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("a notbase64!").is_err());
        assert!(Keyring::parse(&format!("a {}", STANDARD.encode([1u8; 16]))).is_err());
        assert!(Keyring::parse(&format!("a {key}\na {key}")).is_err());
        assert!(Keyring::parse(&format!("a:b {key}")).is_err());
        assert!(!format!("{k:?}").contains(&key));
    }
}
