use crate::dataflow::graph::{dependencies, slice, stale, Deps, Execution, StaleReason};
use crate::dataflow::{analyse, Analysis};

/// A session: (cell, code) in the order they ran; ids are 1, 2, 3, …
struct Session {
    cells: Vec<&'static str>,
    analyses: Vec<Analysis>,
}

impl Session {
    fn new(language: &str, runs: &[(&'static str, &str)]) -> Self {
        Session {
            cells: runs.iter().map(|(cell, _)| *cell).collect(),
            analyses: runs
                .iter()
                .map(|(_, code)| analyse(code, language))
                .collect(),
        }
    }

    fn python(runs: &[(&'static str, &str)]) -> Self {
        Session::new("python", runs)
    }

    fn executions(&self) -> Vec<Execution<'_>> {
        self.cells
            .iter()
            .zip(&self.analyses)
            .enumerate()
            .map(|(index, (cell, analysis))| Execution {
                id: index as i64 + 1,
                cell: Some(cell),
                analysis,
            })
            .collect()
    }

    fn deps(&self) -> Vec<Deps> {
        dependencies(&self.executions())
    }

    /// Ids of the slice of the run with id `run`.
    fn slice(&self, run: i64) -> Vec<i64> {
        slice(&self.deps(), run as usize - 1)
            .into_iter()
            .map(|index| index as i64 + 1)
            .collect()
    }

    /// (cell, run id, reasons) of the stale cells.
    fn stale(&self) -> Vec<(String, i64, Vec<StaleReason>)> {
        let executions = self.executions();
        stale(&executions, &dependencies(&executions))
            .into_iter()
            .map(|cell| (cell.cell, cell.run, cell.reasons))
            .collect()
    }

    fn stale_cells(&self) -> Vec<String> {
        self.stale().into_iter().map(|(cell, ..)| cell).collect()
    }

    /// (id, names) each run depends on.
    fn on(&self, run: i64) -> Vec<(i64, Vec<String>)> {
        self.deps()[run as usize - 1]
            .on
            .iter()
            .map(|edge| (edge.id, edge.names.clone()))
            .collect()
    }
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn redefined(name: &str, by: i64) -> StaleReason {
    StaleReason::Redefined {
        name: name.to_owned(),
        by,
    }
}

#[test]
fn a_read_depends_on_the_latest_earlier_definition() {
    let session = Session::python(&[
        ("a", "df = load()"),
        ("b", "m = df.mean()"),
        ("c", "print(m)"),
        ("a", "df = load2()"),
        ("d", "print(df, m)"),
    ]);
    assert_eq!(session.on(2), vec![(1, names(&["df"]))]);
    assert_eq!(session.on(3), vec![(2, names(&["m"]))]);
    assert_eq!(session.on(5), vec![(2, names(&["m"])), (4, names(&["df"]))]);
    assert_eq!(session.slice(3), vec![1, 2, 3]);
    assert_eq!(session.slice(5), vec![1, 2, 4, 5]);
}

#[test]
fn an_upstream_cell_rerun_makes_readers_stale_with_the_reason() {
    // Cell a edited and re-run after b and c ran.
    let session = Session::python(&[
        ("a", "x = 1"),
        ("b", "y = x * 2"),
        ("c", "print(y)"),
        ("a", "x = 5"),
    ]);
    assert_eq!(
        session.stale(),
        vec![
            ("b".to_owned(), 2, vec![redefined("x", 4)]),
            (
                "c".to_owned(),
                3,
                vec![StaleReason::UpstreamStale { run: 2 }]
            ),
        ]
    );
    // Re-running the stale cells in notebook order clears them.
    let session = Session::python(&[
        ("a", "x = 1"),
        ("b", "y = x * 2"),
        ("c", "print(y)"),
        ("a", "x = 5"),
        ("b", "y = x * 2"),
        ("c", "print(y)"),
    ]);
    assert!(session.stale().is_empty());
}

#[test]
fn running_a_downstream_cell_out_of_order_keeps_it_stale() {
    // c re-ran but b (its input) did not: c read the stale y.
    let session = Session::python(&[
        ("a", "x = 1"),
        ("b", "y = x * 2"),
        ("a", "x = 5"),
        ("c", "print(y)"),
    ]);
    assert_eq!(session.stale_cells(), vec!["b", "c"]);
    let reasons = &session.stale()[1].2;
    assert_eq!(reasons, &vec![StaleReason::UpstreamStale { run: 2 }]);
}

#[test]
fn mutation_through_a_method_is_a_new_definition() {
    let session = Session::python(&[
        ("a", "lst = []"),
        ("b", "lst.append(1)"),
        ("c", "print(lst)"),
        ("b", "lst.append(2)"),
    ]);
    assert_eq!(session.on(3), vec![(2, names(&["lst"]))]);
    assert_eq!(session.slice(3), vec![1, 2, 3]);
    assert_eq!(
        session.stale(),
        vec![(
            "c".to_owned(),
            3,
            vec![redefined("lst", 4), StaleReason::UpstreamStale { run: 2 }]
        )]
    );
}

#[test]
fn calling_into_a_module_does_not_redefine_it() {
    let session = Session::python(&[
        ("a", "import numpy as np"),
        ("b", "np.random.seed(0)"),
        ("c", "x = np.zeros(3)"),
        ("d", "np.set_printoptions(precision=3)"),
    ]);
    assert_eq!(session.on(3), vec![(1, names(&["np"]))]);
    assert!(session.stale().is_empty());
}

#[test]
fn a_deletion_makes_earlier_readers_stale() {
    let session = Session::python(&[("a", "x = 1"), ("b", "print(x)"), ("c", "del x")]);
    assert_eq!(
        session.stale(),
        vec![(
            "b".to_owned(),
            2,
            vec![StaleReason::Deleted {
                name: "x".to_owned(),
                by: 3
            }]
        )]
    );
}

#[test]
fn a_function_reading_a_global_links_to_its_definition() {
    let session = Session::python(&[
        ("a", "df = load()"),
        ("b", "def total():\n    return df.sum()"),
        ("c", "t = total()"),
        ("a", "df = load_other()"),
    ]);
    assert_eq!(session.slice(3), vec![1, 2, 3]);
    assert_eq!(session.stale_cells(), vec!["b", "c"]);
}

#[test]
fn imports_and_loops_link_like_any_name() {
    let session = Session::python(&[
        ("a", "import math"),
        (
            "b",
            "total = 0\nfor i in range(10):\n    total += math.sqrt(i)",
        ),
        ("c", "for i in range(3):\n    print(i)"),
        ("d", "print(total)"),
    ]);
    assert_eq!(session.on(2), vec![(1, names(&["math"]))]);
    // A loop variable bound again is not a read of the old one.
    assert!(session.on(3).is_empty());
    assert_eq!(session.slice(4), vec![1, 2, 4]);
}

#[test]
fn an_everything_execution_depends_on_all_before_and_may_define_anything() {
    let session = Session::python(&[
        ("a", "x = 1"),
        ("b", "print(x)"),
        ("c", "from helpers import *"),
        ("d", "print(x)"),
        ("e", "%%bash\nls"),
    ]);
    let deps = session.deps();
    assert!(deps[2].all_earlier && deps[4].all_earlier);
    assert_eq!(session.on(4), vec![(1, names(&["x"])), (3, names(&["x"]))]);
    assert_eq!(session.slice(4), vec![1, 2, 3, 4]);
    let stale = session.stale();
    assert_eq!(stale[0].0, "b");
    assert!(matches!(
        &stale[0].2[0],
        StaleReason::MayHaveRedefined { by: 3, reason } if reason.contains("import *")
    ));
    // d is stale too: the %%bash cell ran after it.
    assert_eq!(session.stale_cells(), vec!["b", "d"]);
}

#[test]
fn a_syntax_error_cell_is_order_only_in_the_graph() {
    let session = Session::python(&[("a", "x = 1"), ("b", "y = ("), ("c", "print(x)")]);
    assert!(session.deps()[1].all_earlier);
    assert_eq!(session.slice(3), vec![1, 2, 3]);
}

#[test]
fn an_order_only_session_is_stale_when_an_earlier_cell_reruns() {
    let session = Session::new(
        "bash",
        &[
            ("a", "X=1"),
            ("b", "echo $X"),
            ("c", "echo hi"),
            ("a", "X=2"),
        ],
    );
    let deps = session.deps();
    assert!(!deps[0].all_earlier);
    assert!(deps[1..].iter().all(|d| d.all_earlier && d.on.is_empty()));
    assert_eq!(session.slice(3), vec![1, 2, 3]);
    let stale = session.stale();
    assert_eq!(
        stale,
        vec![
            (
                "b".to_owned(),
                2,
                vec![StaleReason::EarlierCellRerun { by: 4 }]
            ),
            (
                "c".to_owned(),
                3,
                vec![StaleReason::EarlierCellRerun { by: 4 }]
            ),
        ]
    );
}

#[test]
fn a_shadowed_builtin_is_linked() {
    let session = Session::python(&[
        ("a", "sum = 0"),
        ("b", "print(sum)"),
        ("c", "print(len('x'))"),
    ]);
    assert_eq!(session.on(2), vec![(1, names(&["sum"]))]);
    assert!(session.on(3).is_empty());
}

#[test]
fn runs_without_a_cell_id_count_but_are_never_reported() {
    let analyses = [analyse("x = 1", "python"), analyse("print(x)", "python")];
    let executions: Vec<Execution<'_>> = analyses
        .iter()
        .enumerate()
        .map(|(i, analysis)| Execution {
            id: 10 + i as i64,
            cell: None,
            analysis,
        })
        .collect();
    let deps = dependencies(&executions);
    assert_eq!(deps[1].on[0].id, 10);
    assert!(stale(&executions, &deps).is_empty());
}

#[test]
fn reasons_read_as_sentences() {
    let label = |id: i64| format!("cell {id} at 10:42");
    assert_eq!(
        redefined("df", 3).describe(label),
        "`df` was redefined by cell 3 at 10:42"
    );
    assert_eq!(
        StaleReason::UpstreamStale { run: 2 }.describe(label),
        "cell 2 at 10:42, which this depends on, is stale"
    );
    let json = serde_json::to_value(redefined("df", 3)).unwrap();
    assert_eq!(json["kind"], "redefined");
    assert_eq!(json["name"], "df");
}

/// Prints timings of `dependencies`, `slice` and `stale` over a 500-cell
/// notebook with 50,000 runs (`cargo test --release --lib dataflow --
/// --ignored --nocapture --test-threads=1`).
#[test]
#[ignore]
fn bench_graph() {
    let codes: Vec<String> = (0..500)
        .map(|cell| match cell % 5 {
            0 => format!("v{cell} = load({cell})"),
            1 => format!("v{cell} = v{} * 2 + v{}", cell - 1, cell / 2),
            2 => format!("v{}.append(v{cell})", cell - 2),
            3 => format!("def f{cell}():\n    return v{}", cell - 3),
            _ => format!("print(v{}, f{}())", cell - 4, cell - 1),
        })
        .collect();
    let analyses: Vec<Analysis> = codes.iter().map(|code| analyse(code, "python")).collect();
    let cells: Vec<String> = (0..500).map(|cell| format!("cell-{cell}")).collect();
    // 50,000 runs: mostly in order, with every 7th run re-running an
    // earlier cell.
    let executions: Vec<Execution<'_>> = (0..50_000usize)
        .map(|run| {
            let cell = if run % 7 == 0 {
                (run * 31) % 500
            } else {
                run % 500
            };
            Execution {
                id: run as i64,
                cell: Some(&cells[cell]),
                analysis: &analyses[cell],
            }
        })
        .collect();
    let start = std::time::Instant::now();
    let deps = dependencies(&executions);
    let deps_time = start.elapsed();
    let start = std::time::Instant::now();
    let sliced = slice(&deps, executions.len() - 1);
    let slice_time = start.elapsed();
    let start = std::time::Instant::now();
    let stale_cells = stale(&executions, &deps);
    let stale_time = start.elapsed();
    println!(
        "graph of 50,000 runs / 500 cells: dependencies {deps_time:?}, slice {slice_time:?} \
         ({} runs), stale {stale_time:?} ({} stale cells)",
        sliced.len(),
        stale_cells.len()
    );
}
