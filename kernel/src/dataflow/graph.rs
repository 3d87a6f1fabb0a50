//! From the analyses of one session's executions (one kernel lifetime: a
//! restart starts a new graph), in recorded order: what each execution
//! depends on, the slice of a run, and which cells' last runs are stale.
//!
//! # Rules
//!
//! Dependencies. An execution E that reads name n depends on the latest
//! earlier execution that defined, deleted or mutated n (a "mutation" of a
//! name whose latest binding is an import does not count: calling
//! `np.random.seed` does not make `np` a new value). An execution whose
//! names are unknown ([`super::Mode::OrderOnly`], [`super::Mode::Everything`]) depends on
//! every earlier execution, and counts as defining every name: a later
//! reader of n also depends on the latest such execution when it is more
//! recent than n's latest known definition. Builtins read are linked only to
//! an execution that explicitly rebound them (`sum = 0`).
//!
//! Slice. The transitive closure of a run's dependencies, the run included,
//! in recorded order.
//!
//! Stale. A run R is stale when
//! - a name R read was defined, deleted or mutated by a later execution
//!   ([`StaleReason::Redefined`], [`StaleReason::Deleted`]);
//! - R read names and a later execution's names are unknown
//!   ([`StaleReason::MayHaveRedefined`]);
//! - R's own names are unknown and a cell that ran before R ran again after
//!   it ([`StaleReason::EarlierCellRerun`]): the only signal an order-only
//!   session gives;
//! - or a run R read names from is stale ([`StaleReason::UpstreamStale`]),
//!   unless R itself is what made it stale (a re-run of `lst.append(x)`
//!   changes what its previous run read). Runs whose names are unknown are
//!   stale by the rule above only: they depend on everything before them,
//!   and inheriting every earlier staleness would mark all of them.
//!
//! Whether a cell's source changed since its last run is not known here
//! (the panel knows the current source).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::Analysis;

/// One execution of a session, as [`dependencies`] and [`stale`] take it.
#[derive(Debug, Clone, Copy)]
pub struct Execution<'a> {
    /// The caller's id for it (the store's execution id).
    pub id: i64,
    /// The notebook cell it ran from, when the client said (`cellId`); runs
    /// without one are never "the same cell" as another run.
    pub cell: Option<&'a str>,
    pub analysis: &'a Analysis,
}

/// One dependency: the execution at `index` (of the input) defined `names`
/// that this one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub index: usize,
    pub id: i64,
    pub names: Vec<String>,
}

/// What one execution depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Deps {
    /// Executions it read names from, by ascending index.
    pub on: Vec<Edge>,
    /// It depends on every earlier execution of the session (its names are
    /// unknown). `on` is empty then.
    pub all_earlier: bool,
}

/// Why a run is stale; ids are the callers' [`Execution::id`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaleReason {
    /// `name`, which the run read, was bound again (or changed in place) by
    /// the later execution `by` (the first one after the run).
    Redefined { name: String, by: i64 },
    /// `name`, which the run read, was deleted by the later execution `by`.
    Deleted { name: String, by: i64 },
    /// The later execution `by` may have redefined anything (`reason`: why
    /// its names are unknown).
    MayHaveRedefined { by: i64, reason: String },
    /// The run's names are unknown, and `by` re-ran a cell that had run
    /// before it.
    EarlierCellRerun { by: i64 },
    /// The run `run`, which this one depends on, is stale.
    UpstreamStale { run: i64 },
}

impl StaleReason {
    /// A sentence for people; `label` names an execution ("cell 3 at
    /// 10:42").
    pub fn describe(&self, label: impl Fn(i64) -> String) -> String {
        match self {
            StaleReason::Redefined { name, by } => {
                format!("`{name}` was redefined by {}", label(*by))
            }
            StaleReason::Deleted { name, by } => format!("`{name}` was deleted by {}", label(*by)),
            StaleReason::MayHaveRedefined { by, reason } => {
                format!("{} may have redefined anything ({reason})", label(*by))
            }
            StaleReason::EarlierCellRerun { by } => format!(
                "{} re-ran a cell that ran before this one (names unknown, order only)",
                label(*by)
            ),
            StaleReason::UpstreamStale { run } => {
                format!("{}, which this depends on, is stale", label(*run))
            }
        }
    }
}

/// A cell whose last run is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleCell {
    pub cell: String,
    /// The cell's last run.
    pub run: i64,
    /// Every reason, the run's own first, then the first stale upstream run.
    pub reasons: Vec<StaleReason>,
}

/// The names execution `analysis` gives a new value, given which names are
/// currently bound by an import.
fn definitions<'a, 'm>(
    analysis: &'a Analysis,
    imported: &'m HashMap<&'a str, bool>,
) -> impl Iterator<Item = &'a str> + use<'a, 'm> {
    let mutated = analysis
        .mutates
        .iter()
        .filter(move |name| !imported.get(name.as_str()).copied().unwrap_or(false));
    analysis
        .defines
        .iter()
        .chain(&analysis.deletes)
        .chain(mutated)
        .map(String::as_str)
}

/// Per execution (same order as `executions`), what it depends on.
pub fn dependencies(executions: &[Execution<'_>]) -> Vec<Deps> {
    let mut last_definition: HashMap<&str, usize> = HashMap::new();
    let mut imported: HashMap<&str, bool> = HashMap::new();
    let mut last_unknown: Option<usize> = None;
    let mut result = Vec::with_capacity(executions.len());
    for (index, execution) in executions.iter().enumerate() {
        let analysis = execution.analysis;
        let mut deps = Deps::default();
        if analysis.is_names() {
            let mut edges: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
            for name in &analysis.reads {
                let defined = last_definition.get(name.as_str()).copied();
                if let Some(at) = defined {
                    edges.entry(at).or_default().insert(name);
                }
                if let Some(unknown) = last_unknown.filter(|&u| defined.is_none_or(|at| u > at)) {
                    edges.entry(unknown).or_default().insert(name);
                }
            }
            for name in &analysis.builtins_read {
                if let Some(&at) = last_definition.get(name.as_str()) {
                    edges.entry(at).or_default().insert(name);
                }
            }
            deps.on = edges
                .into_iter()
                .map(|(at, names)| Edge {
                    index: at,
                    id: executions[at].id,
                    names: names.into_iter().map(str::to_owned).collect(),
                })
                .collect();
        } else {
            deps.all_earlier = index > 0;
            last_unknown = Some(index);
        }
        let defined: Vec<&str> = definitions(analysis, &imported).collect();
        for name in defined {
            last_definition.insert(name, index);
            imported.insert(name, analysis.imports.contains(name));
        }
        result.push(deps);
    }
    result
}

/// The slice of the execution at `target`: the indices of the executions it
/// transitively depends on, itself included, ascending (recorded order).
/// `deps` is what [`dependencies`] returned. Panics when `target` is out of
/// range.
pub fn slice(deps: &[Deps], target: usize) -> Vec<usize> {
    let mut needed = vec![false; target + 1];
    needed[target] = true;
    // Every index below this one is in the slice (an order-only execution
    // in it depends on everything before).
    let mut all_below = 0;
    let mut result = Vec::new();
    for index in (0..=target).rev() {
        if !(needed[index] || index < all_below) {
            continue;
        }
        result.push(index);
        if deps[index].all_earlier {
            all_below = all_below.max(index);
        }
        for edge in &deps[index].on {
            needed[edge.index] = true;
        }
    }
    result.reverse();
    result
}

/// The cells whose last run (in this session) is stale, with the reasons,
/// by ascending index of that run. `deps` is what [`dependencies`] returned
/// for the same `executions`.
pub fn stale(executions: &[Execution<'_>], deps: &[Deps]) -> Vec<StaleCell> {
    let count = executions.len();
    // Every execution that gave each name a new value, ascending.
    let mut definers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut imported: HashMap<&str, bool> = HashMap::new();
    let mut unknown: Vec<usize> = Vec::new();
    let mut first_run: HashMap<&str, usize> = HashMap::new();
    let mut last_run: BTreeMap<usize, &str> = BTreeMap::new();
    let mut last_run_of: HashMap<&str, usize> = HashMap::new();
    for (index, execution) in executions.iter().enumerate() {
        let analysis = execution.analysis;
        let defined: Vec<&str> = definitions(analysis, &imported).collect();
        for name in defined {
            definers.entry(name).or_default().push(index);
            imported.insert(name, analysis.imports.contains(name));
        }
        if !analysis.is_names() {
            unknown.push(index);
        }
        if let Some(cell) = execution.cell {
            first_run.entry(cell).or_insert(index);
            if let Some(previous) = last_run_of.insert(cell, index) {
                last_run.remove(&previous);
            }
            last_run.insert(index, cell);
        }
    }
    // For each index i, the later execution (j > i) whose cell first ran
    // earliest: a re-run of an earlier cell exists after i when that first
    // run is before i.
    let mut earliest_after: Vec<Option<(usize, usize)>> = vec![None; count];
    let mut best: Option<(usize, usize)> = None;
    for index in (0..count).rev() {
        earliest_after[index] = best;
        let first = executions[index]
            .cell
            .and_then(|cell| first_run.get(cell).copied())
            .unwrap_or(index);
        if best.is_none_or(|(first_best, _)| first < first_best) {
            best = Some((first, index));
        }
    }

    let mut reasons: Vec<Vec<StaleReason>> = Vec::with_capacity(count);
    // Per execution: the indices of the later executions that made it stale
    // itself, and whether it is stale through an upstream run.
    let mut causers: Vec<Vec<usize>> = Vec::with_capacity(count);
    let mut upstream_stale: Vec<bool> = Vec::with_capacity(count);
    for (index, execution) in executions.iter().enumerate() {
        let analysis = execution.analysis;
        // Reasons are spelled out only for the runs reported (each cell's
        // last); the others need only whether, and by whom, they are stale.
        let report = last_run.contains_key(&index);
        let mut own = Vec::new();
        let mut own_causers = Vec::new();
        if analysis.is_names() {
            let names = analysis.reads.iter().chain(&analysis.builtins_read);
            for name in names {
                let Some(positions) = definers.get(name.as_str()) else {
                    continue;
                };
                let after = positions.partition_point(|&at| at <= index);
                if let Some(&by) = positions.get(after) {
                    own_causers.push(by);
                    if !report {
                        continue;
                    }
                    let deleted = executions[by].analysis.deletes.contains(name);
                    let (name, by) = (name.clone(), executions[by].id);
                    own.push(if deleted {
                        StaleReason::Deleted { name, by }
                    } else {
                        StaleReason::Redefined { name, by }
                    });
                }
            }
            if !analysis.reads.is_empty() {
                let after = unknown.partition_point(|&at| at <= index);
                if let Some(&by) = unknown.get(after) {
                    own_causers.push(by);
                    if report {
                        own.push(StaleReason::MayHaveRedefined {
                            by: executions[by].id,
                            reason: executions[by].analysis.reason().unwrap_or("").to_owned(),
                        });
                    }
                }
            }
        } else if let Some((_, by)) = earliest_after[index].filter(|&(first, _)| first < index) {
            own_causers.push(by);
            own.push(StaleReason::EarlierCellRerun {
                by: executions[by].id,
            });
        }
        // An upstream run made stale only by this very execution (a cell
        // that re-ran and changed what its earlier run read, `lst.append`)
        // does not make this one stale. Executions whose names are unknown
        // depend on everything before them; they are stale by their own rule
        // only, or every run after any stale one would be stale.
        let upstream = deps[index]
            .on
            .iter()
            .map(|edge| edge.index)
            .find(|&at| upstream_stale[at] || causers[at].iter().any(|&by| by != index));
        if let Some(at) = upstream {
            own.push(StaleReason::UpstreamStale {
                run: executions[at].id,
            });
        }
        upstream_stale.push(upstream.is_some());
        causers.push(own_causers);
        reasons.push(own);
    }

    last_run
        .into_iter()
        .filter_map(|(index, cell)| {
            let reasons = std::mem::take(&mut reasons[index]);
            (!reasons.is_empty()).then(|| StaleCell {
                cell: cell.to_owned(),
                run: executions[index].id,
                reasons,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
