//! Routing: which backend runs a container, and why. A pure function of the
//! annotations, the config and what is on PATH, so it can be explained and tested.

use std::fmt;

use crate::annotations::{self, Annotations};
use crate::config::{Config, SandboxMode};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "delegate", rename_all = "lowercase")]
pub enum Route {
    /// An RTOS client of micad.
    Mica,
    /// The pod's infra container: a namespace holder process of the shim.
    Holder,
    /// A Linux container run by the named delegate profile.
    Delegate(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub route: Route,
    pub reason: String,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Route::Mica => write!(f, "mica ({})", self.reason),
            Route::Holder => write!(f, "holder ({})", self.reason),
            Route::Delegate(d) => write!(f, "delegate {d} ({})", self.reason),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("annotation {key}={value:?} is not an allowed delegate; allowed names: {allowed} (config [delegate] allowed). Annotations name a delegate profile, never a path")]
    NotAllowed { key: &'static str, value: String, allowed: String },
    #[error("no OCI runtime found: looked for {looked_for} on PATH ({path}); install crun, runc or youki, or set [delegate] default in the micrun config")]
    NoneFound { looked_for: String, path: String },
    #[error("config [delegate] default = {name:?} is not on PATH ({path}); install it or change the default")]
    DefaultMissing { name: String, path: String },
}

/// Decides the route. `available` tells whether a delegate profile's binary exists;
/// `path` is only used to say where we looked.
pub fn route(
    a: &Annotations,
    cfg: &Config,
    available: &dyn Fn(&str) -> bool,
    path: &str,
) -> Result<Decision, RouteError> {
    if let Some(name) = &a.delegate {
        if !cfg.delegate.allowed.iter().any(|n| n == name) {
            return Err(RouteError::NotAllowed {
                key: annotations::DELEGATE,
                value: name.clone(),
                allowed: cfg.delegate.allowed.join(", "),
            });
        }
        return Ok(decided(Route::Delegate(name.clone()), format!("annotation {}={name}", annotations::DELEGATE)));
    }
    if a.is_sandbox {
        return match cfg.sandbox.mode {
            SandboxMode::Holder => Ok(decided(Route::Holder, "infra container, [sandbox] mode = \"holder\"".into())),
            SandboxMode::Delegate => {
                let (name, why) = default_delegate(cfg, available, path)?;
                Ok(decided(Route::Delegate(name), format!("infra container, [sandbox] mode = \"delegate\"; {why}")))
            }
        };
    }
    if let Some(selected) = &a.mica_selector {
        let name = a.container_name.as_deref().unwrap_or("");
        if selected.iter().any(|s| s == name) {
            return Ok(decided(Route::Mica, format!("container name {name:?} listed in org.openeuler.micran.containers")));
        }
        let (d, why) = default_delegate(cfg, available, path)?;
        return Ok(decided(
            Route::Delegate(d),
            format!("container name {name:?} not listed in org.openeuler.micran.containers; {why}"),
        ));
    }
    if let Some(key) = a.mica.keys().next() {
        return Ok(decided(Route::Mica, format!("annotation org.openeuler.micran.{key}")));
    }
    let (d, why) = default_delegate(cfg, available, path)?;
    Ok(decided(Route::Delegate(d), why))
}

fn decided(route: Route, reason: String) -> Decision {
    Decision { route, reason }
}

/// The delegate an ordinary Linux container goes to, and why.
pub fn default_delegate(
    cfg: &Config,
    available: &dyn Fn(&str) -> bool,
    path: &str,
) -> Result<(String, String), RouteError> {
    if let Some(name) = &cfg.delegate.default {
        if !available(name) {
            return Err(RouteError::DefaultMissing { name: name.clone(), path: path.into() });
        }
        return Ok((name.clone(), format!("default delegate {name} (config)")));
    }
    match cfg.delegate.order.iter().find(|n| available(n)) {
        Some(n) => Ok((n.clone(), format!("default delegate {n} (first found on PATH)"))),
        None => Err(RouteError::NoneFound { looked_for: cfg.delegate.order.join(", "), path: path.into() }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Annotations {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Annotations::parse(&m).unwrap()
    }
    fn only(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |n| names.contains(&n)
    }

    #[test]
    fn default_is_first_on_path_and_says_so() {
        let d = route(&ann(&[]), &Config::default(), &only(&["runc", "youki"]), "/bin").unwrap();
        assert_eq!(d.route, Route::Delegate("runc".into()));
        assert_eq!(d.reason, "default delegate runc (first found on PATH)");
    }

    #[test]
    fn annotation_picks_only_allowed_names() {
        let cfg = Config::default();
        let d = route(&ann(&[(annotations::DELEGATE, "youki")]), &cfg, &only(&["crun", "youki"]), "").unwrap();
        assert_eq!(d.route, Route::Delegate("youki".into()));
        for bad in ["/bin/sh", "../crun", "runsc"] {
            let e = route(&ann(&[(annotations::DELEGATE, bad)]), &cfg, &only(&["crun"]), "").unwrap_err();
            assert!(matches!(e, RouteError::NotAllowed { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad) && e.to_string().contains("allowed"), "{e}");
        }
    }

    #[test]
    fn nothing_on_path_names_what_and_where() {
        let e = route(&ann(&[]), &Config::default(), &only(&[]), "/usr/bin:/bin").unwrap_err().to_string();
        assert!(e.contains("crun, runc, youki") && e.contains("/usr/bin:/bin"), "{e}");
        let mut cfg = Config::default();
        cfg.delegate.default = Some("youki".into());
        let e = route(&ann(&[]), &cfg, &only(&["crun"]), "/bin").unwrap_err().to_string();
        assert!(e.contains("youki"), "{e}");
    }

    #[test]
    fn mica_rules_in_order() {
        let cfg = Config::default();
        let all = only(&["crun"]);
        let d = route(&ann(&[("org.openeuler.micrun.container.os", "zephyr")]), &cfg, &all, "").unwrap();
        assert_eq!(d.route, Route::Mica);
        assert_eq!(d.reason, "annotation org.openeuler.micran.container.os");
        // A pod-level selector: only listed names go to mica, even though every
        // container of the pod carries the prefix.
        let pod = [
            ("org.openeuler.micran.containers", "rtos"),
            ("org.openeuler.micran.container.os", "zephyr"),
            (annotations::CRI_CONTAINER_NAME, "sidecar"),
        ];
        assert_eq!(route(&ann(&pod), &cfg, &all, "").unwrap().route, Route::Delegate("crun".into()));
        let mut rtos = pod;
        rtos[2].1 = "rtos";
        assert_eq!(route(&ann(&rtos), &cfg, &all, "").unwrap().route, Route::Mica);
        // The delegate annotation wins over everything.
        let d = route(
            &ann(&[("org.openeuler.micran.container.os", "zephyr"), (annotations::DELEGATE, "crun")]),
            &cfg,
            &all,
            "",
        )
        .unwrap();
        assert_eq!(d.route, Route::Delegate("crun".into()));
    }

    #[test]
    fn infra_follows_sandbox_mode() {
        let mut cfg = Config::default();
        let sandbox = ann(&[(annotations::CRI_CONTAINER_TYPE, "sandbox"), ("org.openeuler.micran.container.os", "z")]);
        // The holder needs no OCI runtime: none on PATH is fine.
        let d = route(&sandbox, &cfg, &only(&[]), "").unwrap();
        assert_eq!((d.route, d.reason.as_str()), (Route::Holder, "infra container, [sandbox] mode = \"holder\""));
        cfg.sandbox.mode = SandboxMode::Delegate;
        assert_eq!(route(&sandbox, &cfg, &only(&["crun"]), "").unwrap().route, Route::Delegate("crun".into()));
    }
}
