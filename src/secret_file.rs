//! Secrets read from files, as Docker and Kubernetes hand them to a container
//! (`/run/secrets/<name>`, the `*_FILE` variable convention).
//!
//! A file that group or others may access is refused, as ssh refuses a private key file
//! with such a mode: a key that other accounts of the machine can read is no longer a
//! secret. The check is on the file a symlink points to (Kubernetes mounts secrets as
//! symlinks), so a Kubernetes secret volume needs `defaultMode: 0400`.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::crypto::handshake::IdentityKey;
use crate::crypto::keys::Psk;
use crate::error::{Error, Result};

/// A key file holds 64 hex digits and perhaps a newline; anything much longer is not one.
const MAX_SECRET_FILE_LEN: u64 = 4096;

/// The text of the secret file `path`; `what` names the secret in errors ("PSK").
///
/// Errors (`Error::Config`) name the file and, for a bad mode, the mode; never the content.
pub fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    let shown = path.display();
    let cannot =
        |e: std::io::Error| Error::Config(format!("cannot read the {what} file {shown}: {e}"));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "the {what} file {shown} is not a regular file"
        )));
    }
    check_private(path, &meta, what)?;
    let mut raw = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SECRET_FILE_LEN + 1)
        .read_to_end(&mut raw)
        .map_err(cannot)?;
    if raw.len() as u64 > MAX_SECRET_FILE_LEN {
        return Err(Error::Config(format!(
            "the {what} file {shown} is larger than {MAX_SECRET_FILE_LEN} bytes: not a key file"
        )));
    }
    let text = std::str::from_utf8(&raw).map_err(|_| {
        Error::Config(format!(
            "the {what} file {shown} is not text: it must hold the key as hex digits"
        ))
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "the {what} file {} has mode {mode:04o}: it is accessible by group or others; \
             restrict it with `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata, _what: &str) -> Result<()> {
    // Windows ACLs do not map onto a mode; the file's ACL is the operator's to set.
    Ok(())
}

/// The PSK in the file `path` (64 hex digits).
pub fn psk_from_file(path: &Path) -> Result<Psk> {
    let text = read_secret_file(path, "PSK")?;
    Psk::from_hex(&text).map_err(|e| Error::Config(format!("the PSK file {}: {e}", path.display())))
}

/// The identity key in the file `path` (64 hex digits).
pub fn identity_key_from_file(path: &Path) -> Result<IdentityKey> {
    let text = read_secret_file(path, "identity key")?;
    IdentityKey::from_hex(&text)
        .map_err(|e| Error::Config(format!("the identity key file {}: {e}", path.display())))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const PSK: &str = "8f1a7b3c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn file(name: &str, content: &str, mode: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("evospikenet-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_gives_the_key() {
        let path = file("ok", &format!("{PSK}\n"), 0o600);
        let psk = psk_from_file(&path).unwrap();
        assert_eq!(psk.key_id(), Psk::from_hex(PSK).unwrap().key_id());
        let read_only = file("ro", PSK, 0o400);
        psk_from_file(&read_only).unwrap();
    }

    #[test]
    fn group_or_world_access_is_refused_naming_file_and_mode() {
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = file(&format!("m{mode:o}"), PSK, mode);
            let err = psk_from_file(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
            assert!(!err.contains(PSK), "{err}");
        }
    }

    #[test]
    fn bad_content_and_missing_files_are_named_without_the_content() {
        let short = file("short", "deadbeef", 0o600);
        let err = psk_from_file(&short).unwrap_err().to_string();
        assert!(err.contains("short") && err.contains("64") && !err.contains("deadbeef"));
        let err = identity_key_from_file(&short).unwrap_err().to_string();
        assert!(err.contains("identity key file") && !err.contains("deadbeef"));
        let missing = std::env::temp_dir().join("evospikenet-no-such-key-file");
        let err = psk_from_file(&missing).unwrap_err().to_string();
        assert!(err.contains("cannot read the PSK file"), "{err}");
        let big = file("big", &"a".repeat(5000), 0o600);
        assert!(psk_from_file(&big)
            .unwrap_err()
            .to_string()
            .contains("larger"));
    }
}
