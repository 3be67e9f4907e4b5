//! The sweep file: a base config and the axes that vary it, expanded into
//! the list of runs. Axes are config keys with lists of values; the keys of
//! `[axes]` multiply (a grid), the keys of one `[[zip]]` group vary together
//! (equal-length lists), and the groups multiply with the grid. Values are
//! TOML lists or range helpers (`logspace`, `geomspace`, `linspace`, `pow2`).
//! Each run gets a stable id from its overrides: a readable name plus a
//! short hash, the same on every machine and in every shard.

use crate::config::Config;
use crate::error::{Error, Result};
use std::path::Path;

/// A parsed sweep file.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    pub name: String,
    /// The base config as TOML text.
    pub base: String,
    /// At most this many runs train as one ensemble.
    pub max_ensemble: usize,
    /// Axis groups in the order they multiply; each holds keys with
    /// equal-length value lists (one key for a grid axis).
    pub groups: Vec<Vec<(String, Vec<toml::Value>)>>,
}

/// One run of the sweep.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub id: String,
    /// `(key, value)` in axis order, as `--set key=value` would give them.
    pub overrides: Vec<(String, toml::Value)>,
    pub cfg: Config,
}

impl RunSpec {
    /// The overrides in `--set` form.
    pub fn override_args(&self) -> Vec<String> {
        self.overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

const DEFAULT_MAX_ENSEMBLE: usize = 64;
const TOP_KEYS: [&str; 5] = ["name", "base", "max_ensemble", "axes", "zip"];

fn bad(key: &str, msg: impl Into<String>) -> Error {
    Error::config(key, msg.into())
}

impl SweepSpec {
    /// Reads a sweep file; a `base = "file.toml"` path is taken relative to
    /// the sweep file's directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into());
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &stem, dir).map_err(|e| match e {
            Error::Msg(m) => Error::msg(format!("{}: {m}", path.display())),
            Error::Config { key, msg } => {
                Error::msg(format!("{}: sweep key `{key}`: {msg}", path.display()))
            }
            e => e,
        })
    }

    /// Parses sweep text; `default_name` names it when it has no `name`, and
    /// a base config path is read relative to `dir`.
    pub fn parse(text: &str, default_name: &str, dir: &Path) -> Result<Self> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| Error::msg(format!("invalid TOML: {e}")))?;
        if let Some(k) = table.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown sweep key; expected one of {}", TOP_KEYS.join(", ")),
            ));
        }
        let name = match table.get("name") {
            None => default_name.to_string(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(v) => return Err(bad("name", format!("expected a string, got {v}"))),
        };
        let base = match table.get("base") {
            None => String::new(),
            Some(toml::Value::String(p)) => {
                let path = dir.join(p);
                std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?
            }
            Some(toml::Value::Table(t)) => toml::to_string(t)
                .map_err(|e| bad("base", format!("cannot write it back as TOML: {e}")))?,
            Some(v) => {
                return Err(bad(
                    "base",
                    format!("expected a config file path or a [base] table, got {v}"),
                ))
            }
        };
        let max_ensemble = match table.get("max_ensemble") {
            None => DEFAULT_MAX_ENSEMBLE,
            Some(toml::Value::Integer(n)) if *n >= 1 => *n as usize,
            Some(v) => {
                return Err(bad(
                    "max_ensemble",
                    format!("expected a positive integer, got {v}"),
                ))
            }
        };
        let mut groups = Vec::new();
        match table.get("axes") {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (key, v) in t {
                    groups.push(vec![(key.clone(), axis_values(&format!("axes.{key}"), v)?)]);
                }
            }
            Some(v) => return Err(bad("axes", format!("expected a table of keys, got {v}"))),
        }
        match table.get("zip") {
            None => {}
            Some(toml::Value::Array(list)) => {
                for (i, g) in list.iter().enumerate() {
                    let t = g.as_table().ok_or_else(|| {
                        bad(&format!("zip[{i}]"), "expected a table of keys ([[zip]])")
                    })?;
                    let mut group = Vec::new();
                    for (key, v) in t {
                        group.push((key.clone(), axis_values(&format!("zip[{i}].{key}"), v)?));
                    }
                    let lens: Vec<usize> = group.iter().map(|(_, v)| v.len()).collect();
                    if lens.windows(2).any(|w| w[0] != w[1]) {
                        return Err(bad(
                            &format!("zip[{i}]"),
                            format!("zipped lists must have equal lengths, got {lens:?}"),
                        ));
                    }
                    if !group.is_empty() {
                        groups.push(group);
                    }
                }
            }
            Some(v) => return Err(bad("zip", format!("expected [[zip]] tables, got {v}"))),
        }
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in groups.iter().flatten() {
            if !seen.insert(key.clone()) {
                return Err(bad(key, "appears in more than one axis"));
            }
        }
        Ok(SweepSpec {
            name,
            base,
            max_ensemble,
            groups,
        })
    }

    /// Every run of the grid, checked: a value that makes a bad config is
    /// reported with its run and key before anything trains.
    pub fn expand(&self) -> Result<Vec<RunSpec>> {
        let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
        for group in &self.groups {
            let n = group.first().map_or(0, |(_, v)| v.len());
            let mut next = Vec::with_capacity(combos.len() * n);
            for c in &combos {
                for i in 0..n {
                    let mut c = c.clone();
                    c.extend(group.iter().map(|(k, v)| (k.clone(), v[i].clone())));
                    next.push(c);
                }
            }
            combos = next;
        }
        let mut ids = std::collections::BTreeSet::new();
        combos
            .into_iter()
            .map(|overrides| {
                let id = run_id(&overrides);
                let args: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let cfg = Config::from_toml_str(&self.base, &args)
                    .and_then(|c| c.resolve().map(|_| c))
                    .map_err(|e| Error::msg(format!("run {id} ({}): {e}", args.join(" "))))?;
                if !ids.insert(id.clone()) {
                    return Err(Error::msg(format!("two runs share the id {id}")));
                }
                Ok(RunSpec { id, overrides, cfg })
            })
            .collect()
    }

    /// The keys the sweep varies, in axis order.
    pub fn axis_keys(&self) -> Vec<String> {
        self.groups
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// A list of values, or a range helper table.
fn axis_values(key: &str, v: &toml::Value) -> Result<Vec<toml::Value>> {
    let values = match v {
        toml::Value::Array(a) => a.clone(),
        toml::Value::Table(t) => range_values(key, t)?,
        other => vec![other.clone()],
    };
    if values.is_empty() {
        return Err(bad(key, "an axis needs at least one value"));
    }
    Ok(values)
}

const HELPERS: &str = "logspace = [a, b, n] (n points 10^a..10^b), geomspace = [start, stop, n], \
                       linspace = [start, stop, n], pow2 = [lo, hi] (powers of two), with optional round = true";

fn range_values(key: &str, t: &toml::Table) -> Result<Vec<toml::Value>> {
    let round = match t.get("round") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(v) => return Err(bad(key, format!("round: expected true or false, got {v}"))),
    };
    let helpers: Vec<&String> = t.keys().filter(|k| *k != "round").collect();
    let [name] = helpers.as_slice() else {
        return Err(bad(key, format!("expected exactly one of {HELPERS}")));
    };
    let args = t[name.as_str()]
        .as_array()
        .ok_or_else(|| bad(key, format!("{name}: expected a list, see {HELPERS}")))?
        .iter()
        .map(|x| match x {
            toml::Value::Integer(i) => Ok(*i as f64),
            toml::Value::Float(f) => Ok(*f),
            other => Err(bad(key, format!("{name}: expected numbers, got {other}"))),
        })
        .collect::<Result<Vec<f64>>>()?;
    let count = |n: f64| -> Result<usize> {
        if n >= 1.0 && n.fract() == 0.0 {
            Ok(n as usize)
        } else {
            Err(bad(
                key,
                format!("{name}: the count must be a positive integer, got {n}"),
            ))
        }
    };
    let points = match (name.as_str(), args.as_slice()) {
        ("logspace", [a, b, n]) => spaced(*a, *b, count(*n)?)
            .into_iter()
            .map(|e| 10f64.powf(e))
            .collect(),
        ("geomspace", [a, b, n]) => {
            if !(*a > 0.0 && *b > 0.0) {
                return Err(bad(key, "geomspace: start and stop must be positive"));
            }
            spaced(a.ln(), b.ln(), count(*n)?)
                .into_iter()
                .map(f64::exp)
                .collect()
        }
        ("linspace", [a, b, n]) => spaced(*a, *b, count(*n)?),
        ("pow2", [lo, hi]) => {
            if !(*lo >= 1.0 && hi >= lo) {
                return Err(bad(key, "pow2: expected 1 <= lo <= hi"));
            }
            let mut out = Vec::new();
            let mut p = 1.0;
            while p <= *hi {
                if p >= *lo {
                    out.push(p);
                }
                p *= 2.0;
            }
            return Ok(out
                .into_iter()
                .map(|p| toml::Value::Integer(p as i64))
                .collect());
        }
        _ => return Err(bad(key, format!("{name}: expected one of {HELPERS}"))),
    };
    Ok(points
        .into_iter()
        .map(|x| {
            if round {
                toml::Value::Integer(x.round() as i64)
            } else {
                // 12 significant digits: 10^-2 is written 0.01, not 0.010000000000000002.
                toml::Value::Float(format!("{x:.11e}").parse().unwrap_or(x))
            }
        })
        .collect())
}

/// `n` evenly spaced points from `a` to `b`, both included.
fn spaced(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

/// `width64_lr0.01_seed0-1a2b3c4d`: the last part of each key and its value,
/// then 8 hex digits of an FNV-1a hash of the full overrides (so two keys
/// with the same last part cannot collide).
pub fn run_id(overrides: &[(String, toml::Value)]) -> String {
    let canonical: String = overrides.iter().map(|(k, v)| format!("{k}={v};")).collect();
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in canonical.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let readable: String = overrides
        .iter()
        .map(|(k, v)| {
            let short = k.rsplit('.').next().unwrap_or(k);
            let value = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{short}{value}")
        })
        .collect::<Vec<_>>()
        .join("_");
    let readable: String = readable
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let hash = format!("{:08x}", (hash ^ (hash >> 32)) as u32);
    if readable.is_empty() {
        hash
    } else {
        format!("{readable}-{hash}")
    }
}
