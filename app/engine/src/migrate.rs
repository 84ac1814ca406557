//! Graph-file format migrations: every change to the file format is one step here, from
//! version N to N+1, on the untyped value, before anything is interpreted. Files of every
//! version are kept under `graphs/fixtures/vN/` and loaded by tests forever.
//!
//! Per-node parameter changes are not here: they belong to the node (`Node::migrate`), keyed by
//! the node type's own version.

use crate::raw::Raw;

/// The format version this Petri writes.
pub const CURRENT: u32 = 1;

/// One migration step: a file of version `N` (its index + 1) becomes version `N + 1`.
pub type Step = fn(Raw) -> Result<Raw, String>;

/// The steps, in order. `STEPS[0]` upgrades version 1 to 2, and so on. Empty while the format
/// is at version 1.
pub const STEPS: &[Step] = &[];

/// Upgrades a parsed file from `from` to [`CURRENT`].
pub fn upgrade(raw: Raw, from: u32) -> Result<Raw, String> {
    upgrade_with(raw, from, STEPS)
}

/// Applies `steps[from-1..]` in order. Kept separate so tests can exercise the mechanism with
/// steps of their own.
pub fn upgrade_with(mut raw: Raw, from: u32, steps: &[Step]) -> Result<Raw, String> {
    let current = steps.len() as u32 + 1;
    if from == 0 || from > current {
        return Err(format!("cannot migrate from format version {from}"));
    }
    for (i, step) in steps.iter().enumerate().skip(from as usize - 1) {
        raw = step(raw).map_err(|e| format!("migrating from format version {} to {}: {e}", i + 1, i + 2))?;
        set_version(&mut raw, i as i64 + 2);
    }
    Ok(raw)
}

fn set_version(raw: &mut Raw, v: i64) {
    if let Raw::Map(m) = raw {
        for (k, val) in m.iter_mut() {
            if *k == Raw::Str("version".into()) {
                *val = Raw::Int(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::parse;

    // A pretend v1 → v2 step renaming `layout` to `positions`, and v2 → v3 adding a field.
    fn rename_layout(raw: Raw) -> Result<Raw, String> {
        let Raw::Map(m) = raw else { return Err("not a map".into()) };
        Ok(Raw::Map(
            m.into_iter()
                .map(|(k, v)| if k == Raw::Str("layout".into()) { (Raw::Str("positions".into()), v) } else { (k, v) })
                .collect(),
        ))
    }
    fn add_tags(raw: Raw) -> Result<Raw, String> {
        let Raw::Map(mut m) = raw else { return Err("not a map".into()) };
        m.push((Raw::Str("tags".into()), Raw::Seq(vec![])));
        Ok(Raw::Map(m))
    }

    #[test]
    fn steps_run_in_order_from_the_file_version() {
        let steps: &[Step] = &[rename_layout, add_tags];
        let v1 = parse(r#"(format: "petri-graph", version: 1, layout: {})"#).unwrap();
        let Raw::Map(m) = upgrade_with(v1, 1, steps).unwrap() else { panic!() };
        let keys: Vec<_> = m.iter().map(|(k, _)| k.clone()).collect();
        assert!(keys.contains(&Raw::Str("positions".into())));
        assert!(keys.contains(&Raw::Str("tags".into())));
        assert!(m.contains(&(Raw::Str("version".into()), Raw::Int(3))));
        // A v2 file only gets the second step.
        let v2 = parse(r#"(format: "petri-graph", version: 2, layout: {})"#).unwrap();
        let Raw::Map(m) = upgrade_with(v2, 2, steps).unwrap() else { panic!() };
        assert!(m.iter().any(|(k, _)| *k == Raw::Str("layout".into())));
        assert!(upgrade_with(Raw::Unit, 4, steps).is_err());
        assert_eq!(CURRENT, STEPS.len() as u32 + 1);
    }
}
