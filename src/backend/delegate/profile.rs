//! Delegate profiles: what differs between OCI runtime CLIs, as data.
//! Built-in profiles live in `delegates/*.toml`; a profile directory from the
//! config may override them or add new ones (e.g. `runsc.toml`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

const BUILTIN: [(&str, &str); 3] = [
    ("crun", include_str!("../../../delegates/crun.toml")),
    ("runc", include_str!("../../../delegates/runc.toml")),
    ("youki", include_str!("../../../delegates/youki.toml")),
];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// A bare name looked up on PATH, or an absolute path (only from a config file).
    pub binary: PathBuf,
    /// Extra global flags placed before every subcommand.
    #[serde(default)]
    pub global_args: Vec<String>,
    #[serde(default)]
    pub log: LogFormat,
    /// Execute a sealed in-memory copy of the binary (see sealed.rs), for
    /// runtimes that otherwise make that copy themselves at every start.
    #[serde(default)]
    pub sealed_exec: bool,
    /// The newest OCI spec version the runtime accepts (see spec_version.rs).
    #[serde(default)]
    pub oci_version_max: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogFormat {
    /// Dotted path of the message in one JSON log line, e.g. `fields.message`.
    pub message_field: String,
    pub level_field: String,
}

impl Default for LogFormat {
    fn default() -> Self {
        LogFormat { message_field: "msg".into(), level_field: "level".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("delegate name {0:?} is invalid: use 1-32 characters of a-z, 0-9, '-' and '_'")]
    BadName(String),
    #[error("no delegate profile named {name:?}: built in are crun, runc, youki; add {dir}/{name}.toml to define it")]
    Unknown { name: String, dir: String },
    #[error("delegate profile {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("delegate {name}: binary {binary:?} not found on PATH ({path}); install it or name another delegate")]
    BinaryMissing { name: String, binary: PathBuf, path: String },
}

pub fn check_name(name: &str) -> Result<(), ProfileError> {
    if crate::config::is_delegate_name(name) { Ok(()) } else { Err(ProfileError::BadName(name.to_string())) }
}

impl Profile {
    /// The profile for `name`: `<dir>/<name>.toml` if present, else the built-in one.
    pub fn load(name: &str, dir: &Path) -> Result<Profile, ProfileError> {
        check_name(name)?;
        let path = dir.join(format!("{name}.toml"));
        let (text, origin) = match std::fs::read_to_string(&path) {
            Ok(t) => (t, path.display().to_string()),
            Err(_) => match BUILTIN.iter().find(|(n, _)| *n == name) {
                Some((_, t)) => (t.to_string(), format!("built-in {name}.toml")),
                None => return Err(ProfileError::Unknown { name: name.into(), dir: dir.display().to_string() }),
            },
        };
        Profile::parse(name, &text, &origin)
    }

    /// The checks of `load` on a profile's text, without the file system, so
    /// the fuzz targets reach them. `name` is the name the file is stored under.
    pub fn parse(name: &str, text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text)
            .map_err(|e| ProfileError::Invalid { path: origin.to_string(), message: e.message().to_string() })?;
        if p.name != name {
            return Err(ProfileError::Invalid { path: origin.to_string(), message: format!("name = {:?} must equal the file name {name:?}", p.name) });
        }
        if p.binary.components().count() > 1 && !p.binary.is_absolute() {
            return Err(ProfileError::Invalid { path: origin.to_string(), message: "binary must be a bare name or an absolute path".into() });
        }
        Ok(p)
    }

    /// Resolves the binary on `path` (a PATH-style list).
    pub fn find_binary(&self, path: &str) -> Result<PathBuf, ProfileError> {
        let missing = || ProfileError::BinaryMissing { name: self.name.clone(), binary: self.binary.clone(), path: path.into() };
        if self.binary.is_absolute() {
            return if is_executable(&self.binary) { Ok(self.binary.clone()) } else { Err(missing()) };
        }
        std::env::split_paths(path).map(|d| d.join(&self.binary)).find(|p| is_executable(p)).ok_or_else(missing)
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The search path for delegate binaries: the shim's PATH, which is containerd's.
pub fn search_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_crun_lacks_events() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name, Path::new("/nonexistent")).unwrap();
            assert_eq!(p.name, name);
        }
        let youki = Profile::load("youki", Path::new("/nonexistent")).unwrap();
        assert_eq!(youki.log.message_field, "fields.message");
        assert!(youki.sealed_exec && !Profile::load("crun", Path::new("/nonexistent")).unwrap().sealed_exec);
    }

    #[test]
    fn names_are_not_paths() {
        for bad in ["/bin/sh", "../runc", "", "Runc", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(matches!(Profile::load("runsc", Path::new("/nonexistent")), Err(ProfileError::Unknown { .. })));
    }

    #[test]
    fn directory_profiles_override_and_add() {
        let dir = std::env::temp_dir().join(format!("micrun-profile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("runsc.toml"), "name = \"runsc\"\nbinary = \"/usr/local/bin/runsc\"\n").unwrap();
        std::fs::write(dir.join("runc.toml"), "name = \"runc\"\nbinary = \"runc\"\nglobal_args = [\"--debug\"]\n").unwrap();
        std::fs::write(dir.join("bad.toml"), "name = \"bad\"\nbinary = \"x/y\"\n").unwrap();
        assert_eq!(Profile::load("runsc", &dir).unwrap().binary, PathBuf::from("/usr/local/bin/runsc"));
        assert_eq!(Profile::load("runc", &dir).unwrap().global_args, vec!["--debug"]);
        assert!(Profile::load("bad", &dir).unwrap_err().to_string().contains("bare name"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
