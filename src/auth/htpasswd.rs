//! The users file of `auth_basic_user_file`: a `user:hash` line per user,
//! as Apache's `htpasswd` writes them and nginx reads them.
//!
//! The file is read when the configuration is built (start-up, `check`,
//! every reload), so a bad line is a configuration error, never a user
//! who cannot sign in while the proxy runs; nginx reads it at every
//! request and finds out then.

use super::md5_crypt::{md5_crypt, MAX_SALT};
use sha_crypt::{PasswordVerifier, ShaCrypt};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The largest file read: room for a few hundred thousand users.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The longest password checked; a longer one is refused without a
/// check. SHA-crypt's time grows with the square of a password's length
/// (12 KB, what a default head holds, takes over a second), and anyone
/// may send one under any name. crypt(3) (libxcrypt) refuses 512 bytes
/// and more too, so no hash it made is lost to the limit.
pub const MAX_PASSWORD_BYTES: usize = 511;

/// The fewest rounds of bcrypt (its cost, a power of two) the algorithm
/// defines.
const MIN_BCRYPT_COST: u32 = 4;

/// The highest bcrypt cost accepted. Each step doubles the time a check
/// takes; at 14 one takes about a second of a core, and every client
/// that sends a wrong password makes the proxy pay it.
pub const MAX_BCRYPT_COST: u32 = 14;

/// The most rounds of SHA-crypt accepted, for the same reason (the
/// default is 5,000): a check of a password of the longest length
/// takes about a second at this many.
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 200_000;

/// The fewest rounds of SHA-crypt: crypt(3) raises fewer to this, where
/// the crate we check with would read the hash otherwise.
const MIN_SHA_CRYPT_ROUNDS: u32 = 1_000;

/// SHA-crypt's rounds when a hash does not say.
const DEFAULT_SHA_CRYPT_ROUNDS: u32 = 5_000;

/// Why a users file cannot be used. Each names the file, and the line at
/// fault when there is one.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{}: cannot read: {error}", path.display())]
    Unreadable { path: PathBuf, error: io::Error },
    #[error("{}: larger than {MAX_FILE_BYTES} bytes, the most a users file may have", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: no users in it: nobody could sign in", path.display())]
    NoUsers { path: PathBuf },
}

/// The users of one file and their password hashes.
pub struct Users {
    path: PathBuf,
    by_name: HashMap<Box<[u8]>, PasswordHash>,
    /// A hash checked for a user that is not in the file: the file's
    /// slowest, so that a wrong name takes as long to refuse as the
    /// slowest user's wrong password, and the time of an answer does not
    /// tell who has an account (unless hashes differ in cost: see
    /// [`Users::costs_differ`]).
    decoy: PasswordHash,
}

/// Never the hashes: a log or a panic message is no place for them.
impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("path", &self.path)
            .field("users", &self.by_name.len())
            .finish()
    }
}

impl Users {
    /// Reads and checks the file at `path` (relative to the working
    /// directory, as `path_to_log`).
    pub fn load(path: &str) -> Result<Users, UsersError> {
        let path = PathBuf::from(path);
        let unreadable = |error| UsersError::Unreadable {
            path: path.clone(),
            error,
        };
        // A regular file only: a FIFO would hang `check`, or a reload and
        // with it the signal thread.
        let file = crate::cache::persist::open_regular(&path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        (file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)).map_err(unreadable)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(UsersError::TooLarge { path });
        }
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(UsersError::NotText { path });
        };
        // A byte order mark (a Windows editor's) would be part of the
        // first user's name, and that user never signed in.
        Users::parse(&path, text.strip_prefix('\u{feff}').unwrap_or(&text))
    }

    /// The users in `text`, the file at `path`: a line per user,
    /// `<user>:<hash>`, maybe followed by `:<comment>` (nginx reads and
    /// ignores one); blank lines and lines that start with `#` are
    /// skipped.
    pub fn parse(path: &Path, text: &str) -> Result<Users, UsersError> {
        let mut by_name: HashMap<Box<[u8]>, PasswordHash> = HashMap::new();
        let mut lines_of: HashMap<Box<[u8]>, usize> = HashMap::new();
        let mut decoy: Option<PasswordHash> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let at_line = |message: String| UsersError::Line {
                path: path.to_path_buf(),
                line: number,
                message,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, rest)) = line.split_once(':') else {
                return Err(at_line(
                    "not `<user>:<hash>`: each line is a user name, `:` and its password's hash"
                        .into(),
                ));
            };
            check_user_name(user).map_err(&at_line)?;
            let hash = rest.split(':').next().unwrap_or_default();
            let hash = PasswordHash::from_str(hash)
                .map_err(|why| at_line(format!("user `{user}`: {why}")))?;
            let name: Box<[u8]> = user.as_bytes().into();
            if let Some(first) = lines_of.get(&name) {
                return Err(at_line(format!(
                    "user `{user}` is also on line {first}: which password counts?"
                )));
            }
            lines_of.insert(name.clone(), number);
            if decoy.as_ref().is_none_or(|d| d.work() < hash.work()) {
                decoy = Some(hash.clone());
            }
            by_name.insert(name, hash);
        }
        let Some(decoy) = decoy else {
            return Err(UsersError::NoUsers {
                path: path.to_path_buf(),
            });
        };
        Ok(Users {
            path: path.to_path_buf(),
            by_name,
            decoy,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether some users' hashes take longer to check than others': a
    /// wrong password then comes back sooner for them than for a name
    /// not in the file, which tells that they have an account.
    pub fn costs_differ(&self) -> bool {
        let cost = self.decoy.cost();
        self.by_name.values().any(|hash| hash.cost() != cost)
    }

    /// Whether `user` is in the file and `password` is theirs.
    pub fn verify(&self, user: &[u8], password: &[u8]) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match self.by_name.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                // As long as a wrong password takes (see `decoy`).
                self.decoy.verify(password);
                false
            }
        }
    }
}

/// A user name as a client can send it: it cannot hold a `:` (the file
/// splits there too), and a control character is more likely a broken
/// file than a name.
fn check_user_name(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("a line with no user name before its `:`".into());
    }
    if user.len() > 256 {
        return Err("a user name longer than 256 bytes".into());
    }
    if user.chars().any(char::is_control) {
        return Err("a user name with a control character".into());
    }
    Ok(())
}

/// A password hash of a kind nginx reads through crypt(3) and `htpasswd`
/// writes.
#[derive(Clone)]
enum PasswordHash {
    /// `$2y$`, `$2b$`, `$2a$` (`htpasswd -B`).
    Bcrypt { hash: Box<str>, cost: u32 },
    /// `$apr1$` (`htpasswd`'s default) and `$1$`: the whole hash, and the
    /// prefix and salt it is computed again from.
    Md5Crypt {
        magic: &'static str,
        salt: Box<str>,
        whole: Box<str>,
    },
    /// `$5$` and `$6$` (SHA-256 and SHA-512 crypt, `openssl passwd -6`).
    ShaCrypt { hash: Box<str>, rounds: u32 },
}

impl FromStr for PasswordHash {
    type Err = String;

    /// Checks the hash's form (not a password: that would take a check's
    /// time for every user at every reload).
    fn from_str(hash: &str) -> Result<PasswordHash, String> {
        let again = "write its password again with `htpasswd -B` (bcrypt)";
        if let Some(rest) = hash.strip_prefix("$apr1$") {
            return md5_hash("$apr1$", rest, hash);
        }
        if let Some(rest) = hash.strip_prefix("$1$") {
            return md5_hash("$1$", rest, hash);
        }
        if hash.starts_with("$2x$") {
            return Err(format!(
                "`$2x$` marks a bcrypt hash made by a broken implementation: {again}"
            ));
        }
        if hash.starts_with("$2") {
            let parts = bcrypt::HashParts::from_str(hash)
                .map_err(|e| format!("not a bcrypt hash ({e})"))?;
            return match parts.get_cost() {
                cost if cost > MAX_BCRYPT_COST => Err(format!(
                    "bcrypt cost {cost} is more than {MAX_BCRYPT_COST}: every check (a wrong \
                     password's too) would take seconds of a core; {again} -C 10"
                )),
                cost if cost < MIN_BCRYPT_COST => Err(format!(
                    "bcrypt cost {cost} is less than {MIN_BCRYPT_COST}, the least bcrypt defines: {again}"
                )),
                cost => Ok(PasswordHash::Bcrypt {
                    hash: hash.into(),
                    cost,
                }),
            };
        }
        if hash.starts_with("$5$") || hash.starts_with("$6$") {
            let rounds = check_sha_crypt(hash)?;
            return Ok(PasswordHash::ShaCrypt {
                hash: hash.into(),
                rounds,
            });
        }
        if hash.starts_with("{SHA}") || hash.starts_with("{SSHA}") {
            return Err(format!(
                "`{{SHA}}` and `{{SSHA}}` hashes (a single SHA-1) are not accepted: {again}"
            ));
        }
        if hash.starts_with("{PLAIN}") {
            return Err(format!("a password in plain text is not accepted: {again}"));
        }
        if hash.starts_with("$y$") || hash.starts_with("$7$") || hash.starts_with("$argon2") {
            return Err(format!(
                "this kind of hash is not read (bcrypt, SHA-crypt `$5$` and `$6$`, and \
                 MD5-crypt `$apr1$` and `$1$` are): {again}"
            ));
        }
        if hash.starts_with('$') {
            return Err(format!("a hash of an unknown kind: {again}"));
        }
        Err(format!(
            "a password in plain text or a crypt(3) DES hash: neither is accepted; {again}"
        ))
    }
}

/// `$apr1$<salt>$<22 characters>`, `rest` what follows the prefix.
fn md5_hash(magic: &'static str, rest: &str, whole: &str) -> Result<PasswordHash, String> {
    let malformed = || format!("not an MD5-crypt hash: `{magic}<salt>$<22 characters>`");
    let (salt, digest) = rest.split_once('$').ok_or_else(malformed)?;
    let well_formed = salt.len() <= MAX_SALT
        && digest.len() == 22
        && (digest.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if !well_formed {
        return Err(malformed());
    }
    Ok(PasswordHash::Md5Crypt {
        magic,
        salt: salt.into(),
        whole: whole.into(),
    })
}

/// `$5$[rounds=<N>$]<salt>$<hash>`, with a number of rounds that will be
/// read as written: the rounds.
fn check_sha_crypt(hash: &str) -> Result<u32, String> {
    let malformed = "not a SHA-crypt hash: `$5$` or `$6$`, maybe `rounds=<N>$`, a salt, `$`, \
                     the hash";
    let mut fields = hash[3..].split('$');
    let mut next = fields.next();
    let mut rounds = DEFAULT_SHA_CRYPT_ROUNDS;
    if let Some(written) = next.and_then(|f| f.strip_prefix("rounds=")) {
        rounds = written.parse().map_err(|_| malformed.to_string())?;
        if !(MIN_SHA_CRYPT_ROUNDS..=MAX_SHA_CRYPT_ROUNDS).contains(&rounds) {
            return Err(format!(
                "rounds={rounds}: from {MIN_SHA_CRYPT_ROUNDS} to {MAX_SHA_CRYPT_ROUNDS} \
                 (the default is {DEFAULT_SHA_CRYPT_ROUNDS})"
            ));
        }
        next = fields.next();
    }
    let crypt64 =
        |s: &str| (s.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    let digest_len = match &hash[..3] {
        "$5$" => 43,
        _ => 86,
    };
    match (next, fields.next(), fields.next()) {
        (Some(salt), Some(digest), None)
            if (1..=16).contains(&salt.len())
                && crypt64(salt)
                && digest.len() == digest_len
                && crypt64(digest) =>
        {
            Ok(rounds)
        }
        _ => Err(malformed.to_string()),
    }
}

impl PasswordHash {
    /// Roughly how long a check of a short password takes, in
    /// microseconds of a core (as measured on a release build): what the
    /// decoy is chosen by.
    fn work(&self) -> u64 {
        match self {
            PasswordHash::Bcrypt { cost, .. } => 80 << cost,
            PasswordHash::Md5Crypt { .. } => 170,
            PasswordHash::ShaCrypt { hash, rounds } if hash.starts_with("$5$") => {
                u64::from(*rounds) * 9 / 50
            }
            PasswordHash::ShaCrypt { rounds, .. } => u64::from(*rounds) * 3 / 5,
        }
    }

    /// The algorithm and its cost: two hashes alike in both take as long
    /// to check, on any machine.
    fn cost(&self) -> (&str, u32) {
        match self {
            PasswordHash::Bcrypt { cost, .. } => ("bcrypt", *cost),
            PasswordHash::Md5Crypt { .. } => ("md5", 1000),
            PasswordHash::ShaCrypt { hash, rounds } => (&hash[..3], *rounds),
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt { hash, .. } => bcrypt::verify(password, hash).unwrap_or(false),
            PasswordHash::Md5Crypt { magic, salt, whole } => {
                let computed = md5_crypt(password, magic, salt.as_bytes());
                same_bytes(computed.as_bytes(), whole.as_bytes())
            }
            PasswordHash::ShaCrypt { hash, .. } => (ShaCrypt::default())
                .verify_password(password, &**hash)
                .is_ok(),
        }
    }
}

/// Whether `a` and `b` hold the same bytes, in a time that depends on
/// their lengths alone.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secret` in each kind: `htpasswd`'s default, `openssl passwd -1`,
    /// crypt(3)'s bcrypt, `openssl passwd -6` and `-5` with rounds.
    const APR1: &str = "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/";
    const MD5: &str = "$1$abc$iCQ2D3nhptRYi27fDYv2s1";
    const BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
    /// `Hello world!`, the examples of the SHA-crypt specification.
    const SHA512: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const SHA256_ROUNDS: &str =
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA";

    fn users(text: &str) -> Result<Users, String> {
        Users::parse(Path::new("htpasswd"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_verifies_its_password_and_no_other() {
        let file = format!(
            "# staff\nann:{APR1}\nbob:{MD5}:Bob, ops\r\ncyd:{BCRYPT}\n\n  dee:{SHA512}\neve:{SHA256_ROUNDS}\n"
        );
        let users = users(&file).unwrap();
        assert_eq!(users.len(), 5);
        assert!(!users.is_empty());
        for name in ["ann", "bob", "cyd"] {
            assert!(users.verify(name.as_bytes(), b"secret"), "{name}");
            assert!(!users.verify(name.as_bytes(), b"Secret"), "{name}");
            assert!(!users.verify(name.as_bytes(), b""), "{name}");
        }
        for name in ["dee", "eve"] {
            assert!(users.verify(name.as_bytes(), b"Hello world!"), "{name}");
            assert!(!users.verify(name.as_bytes(), b"secret"), "{name}");
        }
        // Another user's password, a name not in the file, a name in
        // another case.
        assert!(!users.verify(b"dee", b"secret"));
        assert!(!users.verify(b"zed", b"secret"));
        assert!(!users.verify(b"Ann", b"secret"));
    }

    #[test]
    fn a_hash_the_bcrypt_crate_makes_is_read() {
        let hash = bcrypt::hash("pa:ss wörd", 4).unwrap();
        let users = users(&format!("ann:{hash}\n")).unwrap();
        assert!(users.verify(b"ann", "pa:ss wörd".as_bytes()));
        assert!(!users.verify(b"ann", b"pa:ss"));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let refused = |text: &str| users(text).unwrap_err();
        let cases = [
            ("ann\n", "htpasswd:1: not `<user>:<hash>`"),
            (":{APR1}\n", "htpasswd:1: a line with no user name"),
            (
                "ann:{APR1}\nann:{MD5}\n",
                "htpasswd:2: user `ann` is also on line 1",
            ),
            (
                "\n\nann:secret\n",
                "htpasswd:3: user `ann`: a password in plain text",
            ),
            (
                "ann:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
                "`{SHA}` and `{SSHA}` hashes",
            ),
            (
                "ann:$2x$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a\n",
                "`$2x$`",
            ),
            ("ann:$2b$05$abc\n", "not a bcrypt hash"),
            (
                "ann:$2b$15$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a\n",
                "bcrypt cost 15",
            ),
            (
                "ann:$apr1$abcdefghi$h9FWgUz3n9YxylKLlR5SQ/\n",
                "not an MD5-crypt hash",
            ),
            (
                "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ\n",
                "not an MD5-crypt hash",
            ),
            ("ann:$6$rounds=999$salt$x\n", "rounds=999: from 1000"),
            ("ann:$6$rounds=200001$salt$x\n", "rounds=200001"),
            ("ann:$6$saltstring$short\n", "not a SHA-crypt hash"),
            (
                &format!("ann:$6${}\n", &SHA512[13..]),
                "not a SHA-crypt hash",
            ),
            (
                "ann:$2b$03$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a\n",
                "bcrypt cost 3",
            ),
            ("ann:{SSHA}abcdefgh\n", "`{SHA}` and `{SSHA}`"),
            ("ann:{PLAIN}secret\n", "a password in plain text is not"),
            ("ann:$y$j9T$abc$def\n", "this kind of hash is not read"),
            ("ann:$7$abc\n", "this kind of hash is not read"),
            ("ann:$argon2id$abc\n", "this kind of hash is not read"),
            (
                "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ*\n",
                "not an MD5-crypt hash",
            ),
            ("ann:$9$abc\n", "a hash of an unknown kind"),
            ("# nobody\n\n", "htpasswd: no users in it"),
            ("a\u{7}b:{APR1}\n", "control character"),
        ];
        for (text, expected) in cases {
            let text = text.replace("{APR1}", APR1).replace("{MD5}", MD5);
            let message = refused(&text);
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn a_missing_and_an_oversized_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let message = Users::load(missing.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(message.contains("cannot read"), "{message}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let message = Users::load(big.to_str().unwrap()).unwrap_err().to_string();
        assert!(message.contains("larger than"), "{message}");
        let binary = dir.path().join("binary");
        std::fs::write(&binary, b"ann:\xff\n").unwrap();
        let message = Users::load(binary.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(message.contains("not UTF-8"), "{message}");
    }

    #[test]
    fn a_password_too_long_for_crypt_is_refused_unchecked() {
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let hash = bcrypt::hash(&long, 4).unwrap();
        let users = users(&format!("ann:{hash}\n")).unwrap();
        // bcrypt reads 72 bytes: the first 511 would pass.
        assert!(users.verify(b"ann", &long.as_bytes()[..MAX_PASSWORD_BYTES]));
        assert!(!users.verify(b"ann", long.as_bytes()));
    }

    #[test]
    fn hashes_of_one_cost_hide_who_has_an_account_and_others_are_said() {
        let same = users(&format!("ann:{APR1}\nbob:{MD5}\n")).unwrap();
        assert!(!same.costs_differ());
        let mixed = users(&format!("ann:{APR1}\ncyd:{BCRYPT}\n")).unwrap();
        assert!(mixed.costs_differ());
        // Alike in rounds, not in algorithm: SHA-256 crypt is quicker.
        let sha256 = SHA256_ROUNDS.replace("rounds=10000", "rounds=5000");
        let sha = users(&format!("dee:{SHA512}\neve:{sha256}\n")).unwrap();
        assert!(sha.costs_differ());
        // The decoy is the slowest: a bcrypt hash, which `secret` passes.
        assert!(mixed.decoy.verify(b"secret"));
        assert!(matches!(mixed.decoy, PasswordHash::Bcrypt { cost: 5, .. }));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, format!("\u{feff}ann:{APR1}\n")).unwrap();
        let users = Users::load(path.to_str().unwrap()).unwrap();
        assert!(users.verify(b"ann", b"secret"));
    }

    #[test]
    fn debug_shows_no_hash() {
        let users = users(&format!("ann:{APR1}\n")).unwrap();
        let shown = format!("{users:?}");
        assert!(shown.contains("users: 1"), "{shown}");
        assert!(!shown.contains("h9FW"), "{shown}");
    }

    #[test]
    fn a_file_of_sixteen_mebibytes_is_read() {
        // The documented limit, written out: not the constant it pins.
        let limit = 16 * 1024 * 1024;
        let user = format!("ann:{APR1}\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let mut text = "#".repeat(limit - user.len() - 1);
        text.push('\n');
        text.push_str(&user);
        assert_eq!(text.len(), limit);
        std::fs::write(&path, text).unwrap();
        let users = Users::load(path.to_str().unwrap()).unwrap();
        assert!(users.verify(b"ann", b"secret"));
    }

    #[test]
    fn a_user_name_may_have_256_bytes_and_no_more() {
        let name = "a".repeat(256);
        let read = users(&format!("{name}:{APR1}\n")).unwrap();
        assert!(read.verify(name.as_bytes(), b"secret"));
        let message = users(&format!("{name}a:{APR1}\n")).err().unwrap();
        assert!(message.contains("longer than 256 bytes"), "{message}");
    }

    #[test]
    fn bcrypt_costs_from_4_to_14_are_read() {
        for cost in ["04", "14"] {
            let hash = BCRYPT.replace("$05$", &format!("${cost}$"));
            assert!(users(&format!("ann:{hash}\n")).is_ok(), "{hash}");
        }
    }

    #[test]
    fn the_decoy_is_the_hash_of_most_work_whatever_its_kind() {
        let decoy = |hashes: &[&str]| {
            let text: String = (hashes.iter().enumerate())
                .map(|(i, hash)| format!("user{i}:{hash}\n"))
                .collect();
            let users = users(&text).unwrap();
            let (kind, cost) = users.decoy.cost();
            (kind.to_string(), cost)
        };
        let bcrypt = |cost: &str| BCRYPT.replace("$05$", &format!("${cost}$"));
        // Their work: SHA-512 crypt at 5,000 rounds 3,000, SHA-256 crypt
        // at 10,000 rounds 1,800, bcrypt 4, 5, 6 1,280, 2,560, 5,120.
        assert_eq!(decoy(&[SHA512, SHA256_ROUNDS]), ("$6$".into(), 5000));
        assert_eq!(
            decoy(&[&bcrypt("04"), SHA256_ROUNDS]),
            ("$5$".into(), 10000)
        );
        assert_eq!(decoy(&[&bcrypt("05"), SHA512]), ("$6$".into(), 5000));
        // SHA-512 crypt at 6,000 rounds: 3,600.
        let sha512_6000 = SHA512.replace("$6$", "$6$rounds=6000$");
        assert_eq!(decoy(&[&sha512_6000, &bcrypt("06")]), ("bcrypt".into(), 6));
    }

    #[test]
    fn same_bytes_differing_in_two_places_are_not_the_same() {
        // Differences that cancel out under XOR must still count.
        assert!(!same_bytes(b"ab", b"ba"));
        assert!(!same_bytes(b"aa", b"ab"));
        assert!(same_bytes(b"ab", b"ab"));
        assert!(!same_bytes(b"ab", b"abc"));
    }
}
