//! Minimum-cost one-to-one assignment on a sparse set of admissible pairs (SciPy's
//! rectangular `linear_sum_assignment` through the `lsap` crate).
//!
//! Like Petri's reference (`tests/fixtures/reference/REFERENCE-CONVENTIONS.md`, tracking),
//! inadmissible pairs get a prohibitive cost, so the solver first maximises the number of
//! admissible pairs and then minimises their total cost; the prohibitive pairs are dropped.
//! Rows and columns that share no admissible pair cannot influence each other, so the problem
//! is split into connected groups first (small matrices even with thousands of objects).

use rustc_hash::FxHashMap;

/// The reference's prohibitive cost; raised when admissible costs could add up to it.
const BIG_REF: f64 = 1e9;

/// Assigns rows to columns. `pairs` are the admissible (row, col, cost) triples (finite, ≥ 0,
/// each pair at most once). Returns the chosen admissible pairs, sorted by row.
pub fn assign(pairs: &[(usize, usize, f64)]) -> Result<Vec<(usize, usize)>, String> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    // Union-find over rows (even nodes) and columns (odd nodes), relabelled densely.
    let mut rix: FxHashMap<usize, usize> = FxHashMap::default();
    let mut cix: FxHashMap<usize, usize> = FxHashMap::default();
    for &(r, c, _) in pairs {
        let n = rix.len();
        rix.entry(r).or_insert(n);
        let n = cix.len();
        cix.entry(c).or_insert(n);
    }
    let nr = rix.len();
    let mut parent: Vec<usize> = (0..nr + cix.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(r, c, _) in pairs {
        let (a, b) = (find(&mut parent, rix[&r]), find(&mut parent, nr + cix[&c]));
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut groups: FxHashMap<usize, Vec<(usize, usize, f64)>> = FxHashMap::default();
    for &p in pairs {
        let root = find(&mut parent, rix[&p.0]);
        groups.entry(root).or_default().push(p);
    }
    let mut roots: Vec<usize> = groups.keys().copied().collect();
    roots.sort_unstable();
    let mut out = Vec::new();
    for root in roots {
        let g = &groups[&root];
        if g.len() == 1 {
            out.push((g[0].0, g[0].1));
            continue;
        }
        let mut rows: Vec<usize> = g.iter().map(|p| p.0).collect();
        let mut cols: Vec<usize> = g.iter().map(|p| p.1).collect();
        rows.sort_unstable();
        rows.dedup();
        cols.sort_unstable();
        cols.dedup();
        let (nr, nc) = (rows.len(), cols.len());
        let max_cost = g.iter().map(|p| p.2).fold(0.0f64, f64::max);
        let big = BIG_REF.max((nr.min(nc) as f64 + 1.0) * (max_cost + 1.0) * 2.0);
        let mut m = vec![big; nr * nc];
        let mut ok = vec![false; nr * nc];
        for &(r, c, cost) in g {
            let (i, j) = (rows.binary_search(&r).unwrap_or(0), cols.binary_search(&c).unwrap_or(0));
            m[i * nc + j] = cost;
            ok[i * nc + j] = true;
        }
        let (ri, ci) = lsap::solve(nr, nc, &m, false).map_err(|e| format!("assignment failed: {e:?}"))?;
        for (i, j) in ri.into_iter().zip(ci) {
            if ok[i * nc + j] {
                out.push((rows[i], cols[j]));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maximises_admissible_links_then_minimises_cost() {
        // Row 0 is closest to col 0, but taking it would leave row 1 unmatched.
        let pairs = [(0, 0, 1.0), (0, 1, 2.0), (1, 0, 1.5)];
        assert_eq!(assign(&pairs).unwrap(), vec![(0, 1), (1, 0)]);
        // Two independent groups.
        let pairs = [(0, 5, 3.0), (1, 6, 1.0), (1, 7, 0.5), (2, 7, 0.2)];
        assert_eq!(assign(&pairs).unwrap(), vec![(0, 5), (1, 6), (2, 7)]);
        assert!(assign(&[]).unwrap().is_empty());
    }
}
