//! The step graph of a workflow and the linear-time algorithms the rules use.
//!
//! Nodes are steps by index. Edges come from `next` (any step type except `end`), branch
//! `next`s and `else` (any type that carries them, normally `if_else`/`split`), and
//! `config.target` of `goto` steps. Duplicate edges are merged. References to missing step
//! ids are collected in [`Graph::dangling`] instead of becoming edges. When several steps
//! share an id, references resolve to the first one.
//!
//! Entry: the step named by `start`; when `start` is absent or unknown and steps exist, the
//! first step is used as entry so the remaining rules still see a meaningful graph
//! (`missing-start` reports the root cause).

use crate::domain::workflow::{StepType, WorkflowDocument};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::ops::Index;

/// The hash map of the analysis. Keys come from the document (step ids, tags), so the
/// hasher is seeded per map: with a fixed hash a tenant could pick thousands of ids that
/// land in one bucket and make every lookup a linear probe.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Compressed lists (CSR): `lists[i]` is a slice. One allocation for all lists, so graph
/// algorithms stay cache friendly on large workflows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Csr {
    offsets: Vec<usize>,
    items: Vec<usize>,
}

impl Csr {
    pub fn new() -> Csr {
        Csr {
            offsets: vec![0],
            items: Vec::new(),
        }
    }
    /// Appends the next list.
    pub fn push_list(&mut self, list: impl IntoIterator<Item = usize>) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.items.extend(list);
        self.offsets.push(self.items.len());
    }
    pub fn from_lists(lists: &[Vec<usize>]) -> Csr {
        let mut c = Csr::new();
        for l in lists {
            c.push_list(l.iter().copied());
        }
        c
    }
    /// Number of lists.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Total number of items over all lists.
    pub fn total(&self) -> usize {
        self.items.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> + '_ {
        (0..self.len()).map(move |i| &self[i])
    }
    /// The lists with every edge reversed (for a graph: predecessors).
    pub fn reversed(&self) -> Csr {
        let n = self.len();
        let mut counts = vec![0usize; n + 1];
        for &w in &self.items {
            if w < n {
                counts[w + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut items = vec![0usize; counts[n]];
        for v in 0..n {
            for &w in &self[v] {
                if w < n {
                    items[fill[w]] = v;
                    fill[w] += 1;
                }
            }
        }
        Csr {
            offsets: counts,
            items,
        }
    }
}

impl Index<usize> for Csr {
    type Output = [usize];
    fn index(&self, i: usize) -> &[usize] {
        &self.items[self.offsets[i]..self.offsets[i + 1]]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingRef {
    pub step: usize,
    /// `next`, `else`, `branches[i].next` or `config.target`.
    pub field: String,
    pub target: String,
}

#[derive(Debug, Clone, Default)]
pub struct Graph<'a> {
    /// Successors of each step.
    pub adj: Csr,
    /// Step id → index of the first step with that id.
    pub index: FastMap<&'a str, usize>,
    pub entry: Option<usize>,
    /// True when `start` names an existing step.
    pub start_valid: bool,
    pub dangling: Vec<DanglingRef>,
    /// Per step: whether it has a dangling reference (contacts stop there). Rules ask this
    /// per step, so it is an array rather than a search of [`Graph::dangling`].
    pub has_dangling: Vec<bool>,
    /// `(first, later)` step indices of every repeated step id (non-empty ids only).
    pub duplicate_ids: Vec<(usize, usize)>,
    pub edge_count: usize,
}

impl<'a> Graph<'a> {
    pub fn build(doc: &'a WorkflowDocument) -> Graph<'a> {
        let n = doc.steps.len();
        let mut index: FastMap<&'a str, usize> = FastMap::default();
        index.reserve(n);
        let mut duplicate_ids = Vec::new();
        for (i, s) in doc.steps.iter().enumerate() {
            match index.entry(s.id.as_str()) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    if !s.id.trim().is_empty() {
                        duplicate_ids.push((*first.get(), i));
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
        let mut adj = Csr::new();
        let mut dangling = Vec::new();
        let mut has_dangling = vec![false; n];
        let mut buf: Vec<usize> = Vec::new();
        for (i, s) in doc.steps.iter().enumerate() {
            buf.clear();
            let goto = if s.step_type == StepType::Goto {
                s.config.get("target").and_then(Value::as_str)
            } else {
                None
            };
            let refs =
                s.next
                    .as_deref()
                    .map(|t| (RefField::Next, t))
                    .into_iter()
                    .chain(
                        s.branches.iter().enumerate().filter_map(|(b, br)| {
                            br.next.as_deref().map(|t| (RefField::Branch(b), t))
                        }),
                    )
                    .chain(s.else_next.as_deref().map(|t| (RefField::Else, t)))
                    .chain(goto.map(|t| (RefField::Target, t)));
            for (field, target) in refs {
                if target.is_empty() {
                    continue;
                }
                match index.get(target) {
                    Some(&j) => {
                        if s.step_type != StepType::End {
                            buf.push(j);
                        }
                    }
                    None => {
                        has_dangling[i] = true;
                        dangling.push(DanglingRef {
                            step: i,
                            field: field.to_string(),
                            target: target.to_string(),
                        })
                    }
                }
            }
            buf.sort_unstable();
            buf.dedup();
            adj.push_list(buf.iter().copied());
        }
        let edge_count = adj.total();
        let start_idx = doc
            .start
            .as_ref()
            .and_then(|s| index.get(s.as_str()).copied());
        Graph {
            entry: start_idx.or(if n > 0 { Some(0) } else { None }),
            start_valid: start_idx.is_some(),
            adj,
            index,
            dangling,
            has_dangling,
            duplicate_ids,
            edge_count,
        }
    }

    pub fn len(&self) -> usize {
        self.adj.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    /// Predecessor lists.
    pub fn reversed(&self) -> Csr {
        self.adj.reversed()
    }
}

#[derive(Clone, Copy)]
enum RefField {
    Next,
    Branch(usize),
    Else,
    Target,
}

impl std::fmt::Display for RefField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefField::Next => f.write_str("next"),
            RefField::Branch(b) => write!(f, "branches[{b}].next"),
            RefField::Else => f.write_str("else"),
            RefField::Target => f.write_str("config.target"),
        }
    }
}

/// Nodes reachable from `entry` by BFS. `expand(v)` decides whether the successors of a
/// reached node are explored (the node itself is still marked reachable).
pub fn bfs(adj: &Csr, entry: Option<usize>, expand: impl Fn(usize) -> bool) -> Vec<bool> {
    let mut seen = vec![false; adj.len()];
    let Some(e) = entry else { return seen };
    if e >= adj.len() {
        return seen;
    }
    let mut queue = VecDeque::from([e]);
    seen[e] = true;
    while let Some(v) = queue.pop_front() {
        if !expand(v) {
            continue;
        }
        for &w in &adj[v] {
            if w < seen.len() && !seen[w] {
                seen[w] = true;
                queue.push_back(w);
            }
        }
    }
    seen
}

/// Strongly connected components.
#[derive(Debug, Clone, Default)]
pub struct Sccs {
    /// Component of each node; `usize::MAX` for nodes excluded from the computation.
    pub comp: Vec<usize>,
    /// Members of each component (sorted), in Tarjan order: a component is listed before
    /// every component that can reach it (reverse topological order of the condensation).
    pub components: Csr,
    /// Size > 1, or a single node with an edge to itself.
    pub cyclic: Vec<bool>,
}

/// Iterative Tarjan over the subgraph of nodes for which `include` holds. O(N + E), no
/// recursion, so 50,000-step chains or cycles cannot overflow the stack.
pub fn tarjan(adj: &Csr, include: impl Fn(usize) -> bool) -> Sccs {
    const UNSEEN: usize = usize::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let mut comp = vec![UNSEEN; n];
    let mut components = Csr::new();
    let mut members: Vec<usize> = Vec::new();
    let mut counter = 0usize;

    for root in 0..n {
        if index[root] != UNSEEN || !include(root) {
            continue;
        }
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, 0));
        while let Some(&(v, pos)) = calls.last() {
            if let Some(&w) = adj[v].get(pos) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if w >= n || !include(w) {
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                calls.pop();
                if let Some(&(u, _)) = calls.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let id = components.len();
                    members.clear();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = id;
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    members.sort_unstable();
                    components.push_list(members.iter().copied());
                }
            }
        }
    }
    let cyclic = components
        .iter()
        .map(|m| m.len() > 1 || m.first().is_some_and(|&v| adj[v].contains(&v)))
        .collect();
    Sccs {
        comp,
        components,
        cyclic,
    }
}

/// Longest total weight of a path starting at `entry`, on the condensation: every
/// component's weight is the sum of its members' weights, so a cycle is counted once.
/// Saturating arithmetic; O(N + E).
pub fn longest_path_weight(adj: &Csr, sccs: &Sccs, entry: Option<usize>, weight: &[u64]) -> u64 {
    let Some(e) = entry else { return 0 };
    let Some(&start_comp) = sccs.comp.get(e) else {
        return 0;
    };
    let c = sccs.components.len();
    let comp_weight: Vec<u64> = sccs
        .components
        .iter()
        .map(|m| {
            m.iter().fold(0u64, |acc, &v| {
                acc.saturating_add(weight.get(v).copied().unwrap_or(0))
            })
        })
        .collect();
    // best[x] = heaviest path from the entry's component ending in x (inclusive).
    let mut best: Vec<Option<u64>> = vec![None; c];
    if start_comp >= c {
        return 0;
    }
    best[start_comp] = Some(comp_weight[start_comp]);
    let mut answer = 0;
    // Tarjan order is reverse topological: walk it backwards.
    for x in (0..c).rev() {
        let Some(bx) = best[x] else { continue };
        answer = answer.max(bx);
        for &v in &sccs.components[x] {
            for &w in &adj[v] {
                let y = sccs.comp[w];
                if y == x || y >= c {
                    continue;
                }
                let cand = bx.saturating_add(comp_weight[y]);
                if best[y].is_none_or(|b| b < cand) {
                    best[y] = Some(cand);
                }
            }
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_cycles_and_orders_reverse_topologically() {
        // 0 -> 1 -> 2 -> 1, 2 -> 3, 3 -> 3
        let adj = Csr::from_lists(&[vec![1], vec![2], vec![1, 3], vec![3]]);
        let s = tarjan(&adj, |_| true);
        assert_eq!(s.components.len(), 3);
        assert_eq!(s.comp[1], s.comp[2]);
        assert!(s.cyclic[s.comp[1]]);
        assert!(s.cyclic[s.comp[3]]);
        assert!(!s.cyclic[s.comp[0]]);
        assert!(s.comp[3] < s.comp[1] && s.comp[1] < s.comp[0]);
    }

    #[test]
    fn longest_path_counts_cycle_once() {
        let adj = Csr::from_lists(&[vec![1], vec![2], vec![1, 3], vec![]]);
        assert_eq!(&adj.reversed()[1], &[0, 2]);
        let s = tarjan(&adj, |_| true);
        let w = [1, 10, 100, 1000];
        assert_eq!(longest_path_weight(&adj, &s, Some(0), &w), 1111);
        assert_eq!(longest_path_weight(&adj, &s, Some(3), &w), 1000);
    }

    #[test]
    fn huge_chain_and_cycle_do_not_overflow() {
        let n = 200_000;
        let mut adj: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
        adj[n - 1] = vec![];
        let s = tarjan(&Csr::from_lists(&adj), |_| true);
        assert_eq!(s.components.len(), n);
        adj[n - 1] = vec![0];
        let csr = Csr::from_lists(&adj);
        let s = tarjan(&csr, |_| true);
        assert_eq!(s.components.len(), 1);
        assert!(bfs(&csr, Some(0), |_| true).iter().all(|&b| b));
    }
}
