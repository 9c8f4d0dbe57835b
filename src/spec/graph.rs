//! Cycles among phase dependencies.
//!
//! Iterative throughout: a file with many phases must not overflow the stack.

/// One cycle per group of phases that wait on each other (a strongly
/// connected component of more than one node). `edges[i]` are the nodes `i`
/// waits for; self-edges are ignored. A cycle `[a, b, c]` means a waits for
/// b, b for c, and c for a. Each starts at its lowest node; cycles come out
/// in order of that node.
pub(crate) fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let component = components(edges);
    let mut out = Vec::new();
    let mut seen_component = vec![false; n];
    for start in 0..n {
        let c = component[start];
        if seen_component[c] {
            continue;
        }
        seen_component[c] = true;
        if let Some(cycle) = shortest_cycle_through(edges, start, |v| component[v] == c) {
            out.push(cycle);
        }
    }
    out
}

/// Kosaraju: a component number for each node.
fn components(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    // First pass: nodes in order of finishing a depth-first search.
    let mut finished = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    for root in 0..n {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        let mut stack = vec![(root, 0usize)];
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match edges[node].get(*next) {
                Some(&to) => {
                    *next += 1;
                    if to < n && !visited[to] {
                        visited[to] = true;
                        stack.push((to, 0));
                    }
                }
                None => {
                    finished.push(node);
                    stack.pop();
                }
            }
        }
    }
    // Second pass, on the reversed graph, latest finisher first.
    let mut reversed = vec![Vec::new(); n];
    for (from, tos) in edges.iter().enumerate() {
        for &to in tos.iter().filter(|&&to| to < n) {
            reversed[to].push(from);
        }
    }
    let mut component = vec![usize::MAX; n];
    let mut count = 0;
    for &root in finished.iter().rev() {
        if component[root] != usize::MAX {
            continue;
        }
        component[root] = count;
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            for &from in &reversed[node] {
                if component[from] == usize::MAX {
                    component[from] = count;
                    stack.push(from);
                }
            }
        }
        count += 1;
    }
    component
}

/// Breadth-first from `start` through nodes `inside` allows, back to
/// `start`; `None` when there is no way back (or only a self-edge).
fn shortest_cycle_through(
    edges: &[Vec<usize>],
    start: usize,
    inside: impl Fn(usize) -> bool,
) -> Option<Vec<usize>> {
    let n = edges.len();
    let mut came_from = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &to in &edges[node] {
            if to >= n || to == node || !inside(to) {
                continue;
            }
            if to == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = came_from[at];
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if came_from[to] == usize::MAX {
                came_from[to] = node;
                queue.push_back(to);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cycles_in_a_chain_or_with_self_edges() {
        assert!(cycles(&[vec![], vec![0], vec![1, 0]]).is_empty());
        assert!(cycles(&[vec![0]]).is_empty());
        assert!(cycles(&[]).is_empty());
    }

    #[test]
    fn two_and_three_phase_cycles() {
        assert_eq!(cycles(&[vec![1], vec![0]]), vec![vec![0, 1]]);
        // 0 waits for 2, 2 for 1, 1 for 0
        assert_eq!(cycles(&[vec![2], vec![0], vec![1]]), vec![vec![0, 2, 1]]);
    }

    #[test]
    fn one_cycle_per_group() {
        // {0,1} and {2,3} are separate groups; 4 hangs off both.
        let edges = [vec![1], vec![0], vec![3], vec![2], vec![0, 2]];
        assert_eq!(cycles(&edges), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn picks_a_shortest_cycle_in_a_tangled_group() {
        let edges = [vec![1], vec![2, 0], vec![0]];
        assert_eq!(cycles(&edges), vec![vec![0, 1]]);
    }
}
