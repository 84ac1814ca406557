//! `label.relabel`: renumbers labels 1, 2, 3, … without gaps.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelabelOrder {
    /// Ids in raster order of each id's first pixel (T, C, Z, Y, X), like connected components.
    FirstAppearance,
    /// Keep the order of the old ids (skimage `relabel_sequential`).
    Ascending,
}

/// Sequential ids over the whole array (all volumes together, so an id that marks the same
/// object in several time points keeps marking one object). Returns the labels and the count.
pub fn relabel(lab: &[u32], order: RelabelOrder) -> (Vec<u32>, u32) {
    let max = lab.par_iter().copied().max().unwrap_or(0) as usize;
    let mut next = 0u32;
    let out: Vec<u32> = if max <= 4 * lab.len() + 1024 {
        let mut map = vec![0u32; max + 1];
        match order {
            RelabelOrder::FirstAppearance => {
                for &l in lab {
                    if l != 0 && map[l as usize] == 0 {
                        next += 1;
                        map[l as usize] = next;
                    }
                }
            }
            RelabelOrder::Ascending => {
                let mut seen = vec![false; max + 1];
                lab.iter().for_each(|&l| seen[l as usize] = true);
                for (l, s) in seen.iter().enumerate().skip(1) {
                    if *s {
                        next += 1;
                        map[l] = next;
                    }
                }
            }
        }
        lab.par_iter().map(|&l| map[l as usize]).collect()
    } else {
        // Sparse huge ids: a hash map instead of a table.
        let mut map = std::collections::HashMap::new();
        match order {
            RelabelOrder::FirstAppearance => {
                for &l in lab {
                    if l != 0 {
                        map.entry(l).or_insert_with(|| {
                            next += 1;
                            next
                        });
                    }
                }
            }
            RelabelOrder::Ascending => {
                let mut ids: Vec<u32> = lab.iter().copied().filter(|&l| l != 0).collect();
                ids.sort_unstable();
                ids.dedup();
                for l in ids {
                    next += 1;
                    map.insert(l, next);
                }
            }
        }
        lab.par_iter().map(|&l| if l == 0 { 0 } else { map[&l] }).collect()
    };
    (out, next)
}

pub fn relabel_stack(s: &Stack, order: RelabelOrder) -> Result<Stack, NodeError> {
    let px = s.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?;
    s.with_pixels(relabel(px, order).0).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Relabel;

impl Node for Relabel {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("label.relabel", 1, "label", "Renumbers objects 1, 2, 3, … without gaps.")
            .input("labels", PortType::Labels, "Labels with any ids.")
            .output("labels", PortType::Labels, "Same objects, ids 1..N.")
            .param(ParamSpec::choice(
                "order",
                &["first_appearance", "ascending"],
                "ascending",
                "'ascending' keeps the old order of ids (smallest old id becomes 1); 'first_appearance' \
                 numbers objects in reading order (top-left first, slice by slice).",
            ))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let order = match p.str("order")? {
            "first_appearance" => RelabelOrder::FirstAppearance,
            "ascending" => RelabelOrder::Ascending,
            o => return Err(NodeError::param("order", format!("unknown order '{o}'"))),
        };
        let out = relabel_stack(inputs.labels("labels")?, order)?;
        Ok(Outputs::new().with("labels", Value::Labels(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_orders_and_sparse_ids() {
        let l = [0, 9, 9, 3, 0, 70, 3];
        assert_eq!(relabel(&l, RelabelOrder::Ascending), (vec![0, 2, 2, 1, 0, 3, 1], 3));
        assert_eq!(relabel(&l, RelabelOrder::FirstAppearance), (vec![0, 1, 1, 2, 0, 3, 2], 3));
        let big = [0, u32::MAX, 5, u32::MAX];
        assert_eq!(relabel(&big, RelabelOrder::Ascending), (vec![0, 2, 1, 2], 2));
        assert_eq!(relabel(&big, RelabelOrder::FirstAppearance), (vec![0, 1, 2, 1], 2));
        assert_eq!(relabel(&[0, 0], RelabelOrder::Ascending), (vec![0, 0], 0));
    }
}
