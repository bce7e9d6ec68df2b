//! The build order: a depth-first topological sort of the targets by their inputs; a cycle is an
//! error naming its path (`a -> b -> a`) at the declaration of the target that closes it.

use super::{Builder, InputSource};
use crate::error::Result;

impl Builder<'_> {
    /// The targets `i` reads, in input order.
    fn deps(&self, i: usize) -> Vec<usize> {
        self.targets[i]
            .inputs
            .iter()
            .filter_map(|inp| match inp.source {
                InputSource::Target(j) => Some(j),
                InputSource::File(_) => None,
            })
            .collect()
    }

    pub(super) fn topo_order(&self) -> Result<Vec<usize>> {
        // 0 = unvisited, 1 = on stack, 2 = done.
        let n = self.targets.len();
        let mut state = vec![0u8; n];
        let mut order = Vec::with_capacity(n);
        for root in 0..n {
            if state[root] != 0 {
                continue;
            }
            // (node, its target inputs, next input to visit): the inputs are collected once per
            // visit, not once per step (the summary has one input per condition and kind).
            let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(root, self.deps(root), 0)];
            state[root] = 1;
            while let Some((node, deps, next)) = stack.last_mut() {
                let node = *node;
                if *next < deps.len() {
                    let d = deps[*next];
                    *next += 1;
                    match state[d] {
                        0 => {
                            state[d] = 1;
                            stack.push((d, self.deps(d), 0));
                        }
                        1 => {
                            let start = stack.iter().position(|(s, _, _)| *s == d).unwrap_or(0);
                            let mut cycle: Vec<&str> = stack[start..]
                                .iter()
                                .map(|(s, _, _)| self.targets[*s].name.as_str())
                                .collect();
                            cycle.push(&self.targets[d].name);
                            return Err(self.sf.error(
                                self.spans[d].clone(),
                                format!("dependency cycle: {}", cycle.join(" -> ")),
                            ));
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }
}
