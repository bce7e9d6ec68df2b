//! `studymake graph`: the target graph in DOT, one box per target labelled with its recipe, one
//! edge per input labelled with its role, source files as notes.

use super::{Graph, InputSource};

impl Graph {
    /// The target graph in DOT.
    pub fn to_dot(&self) -> String {
        let mut s = format!(
            "digraph {:?} {{\n  rankdir=LR;\n  node [shape=box];\n",
            self.name
        );
        for t in &self.targets {
            s.push_str(&format!(
                "  {:?} [label=\"{}\\n{}\"];\n",
                t.name,
                t.name,
                t.recipe.describe()
            ));
        }
        for t in &self.targets {
            for inp in &t.inputs {
                match &inp.source {
                    InputSource::Target(j) => s.push_str(&format!(
                        "  {:?} -> {:?} [label={:?}];\n",
                        self.targets[*j].name, t.name, inp.role
                    )),
                    InputSource::File(p) => s.push_str(&format!(
                        "  {:?} [shape=note];\n  {:?} -> {:?} [label={:?}];\n",
                        p.display().to_string(),
                        p.display().to_string(),
                        t.name,
                        inp.role
                    )),
                }
            }
        }
        s.push_str("}\n");
        s
    }
}
