use std::collections::BTreeSet;

use crate::dataflow::{analyse, Analysis, Mode, MAX_CELL_BYTES};

fn py(code: &str) -> Analysis {
    analyse(code, "python")
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Asserts the names an analysis found, in Names mode.
#[track_caller]
fn names(code: &str, defines: &[&str], reads: &[&str]) -> Analysis {
    let analysis = py(code);
    assert_eq!(analysis.mode, Mode::Names, "mode of {code:?}");
    assert_eq!(analysis.defines, set(defines), "defines of {code:?}");
    assert_eq!(analysis.reads, set(reads), "reads of {code:?}");
    analysis
}

#[track_caller]
fn everything(code: &str, reason_contains: &str) -> Analysis {
    let analysis = py(code);
    match &analysis.mode {
        Mode::Everything { reason } => assert!(
            reason.contains(reason_contains),
            "reason {reason:?} of {code:?} lacks {reason_contains:?}"
        ),
        other => panic!("{code:?} gave {other:?}, not Everything"),
    }
    analysis
}

#[track_caller]
fn order_only(analysis: &Analysis, reason_contains: &str) {
    match &analysis.mode {
        Mode::OrderOnly { reason } => assert!(
            reason.contains(reason_contains),
            "reason {reason:?} lacks {reason_contains:?}"
        ),
        other => panic!("{other:?}, not OrderOnly"),
    }
}

#[test]
fn assignment_defines_targets_and_reads_the_rest() {
    names("x = 1\ny = x + z", &["x", "y"], &["z"]);
    names("a, *b = c = f()", &["a", "b", "c"], &["f"]);
    names("[p, (q, r)] = pairs", &["p", "q", "r"], &["pairs"]);
}

#[test]
fn a_name_read_before_the_cell_binds_it_is_a_read() {
    names("x = 1\nprint(x)", &["x"], &[]);
    names("print(x)\nx = 1", &["x"], &["x"]);
}

#[test]
fn augmented_assignment_reads_and_defines() {
    names("n += 1", &["n"], &["n"]);
    names("n = 0\nn += 1", &["n"], &[]);
}

#[test]
fn annotated_assignment_binds_only_with_a_value() {
    names("x: int = 1", &["x"], &[]);
    names("y: int", &[], &[]);
    names("t: MyType = 3", &["t"], &["MyType"]);
}

#[test]
fn imports_bind_the_first_component_or_the_alias() {
    let analysis = names(
        "import a.b.c\nimport numpy as np\nfrom os import path as p, sep\nfrom . import sibling",
        &["a", "np", "p", "sep", "sibling"],
        &[],
    );
    assert_eq!(analysis.imports, set(&["a", "np", "p", "sep", "sibling"]));
    names("from __future__ import annotations", &[], &[]);
}

#[test]
fn def_binds_the_function_and_reads_its_free_globals() {
    names(
        "def f(a, b=default):\n    return a + g + b",
        &["f"],
        &["default", "g"],
    );
    names("def f(a):\n    b = a * 2\n    return b", &["f"], &[]);
    names(
        "@deco\ndef f(x: T) -> R:\n    pass",
        &["f"],
        &["R", "T", "deco"],
    );
    names("def fact(n):\n    return fact(n - 1)", &["fact"], &[]);
    names(
        "async def fetch():\n    await client.get()",
        &["fetch"],
        &["client"],
    );
}

#[test]
fn a_function_reading_a_global_makes_the_cell_read_it() {
    // Calling it later reads the value current then.
    let analysis = names("def f():\n    return df.mean()", &["f"], &["df"]);
    assert!(analysis.mutates.is_empty());
    // A mutation inside a body happens when called: only a read here.
    let analysis = names("def add(v):\n    lst.append(v)", &["add"], &["lst"]);
    assert!(analysis.mutates.is_empty());
}

#[test]
fn closures_and_nonlocal_resolve_to_the_enclosing_function() {
    names(
        "def outer():\n    x = 1\n    def inner():\n        nonlocal x\n        x += y\n    return inner",
        &["outer"],
        &["y"],
    );
}

#[test]
fn lambda_reads_its_free_names() {
    names("f = lambda a, b=d: a + k", &["f"], &["d", "k"]);
}

#[test]
fn class_binds_its_name_and_methods_skip_the_class_scope() {
    names(
        "class A(Base):\n    attr = helper\n    other = attr\n    def m(self):\n        return attr",
        &["A"],
        &["Base", "attr", "helper"],
    );
}

#[test]
fn for_with_and_except_targets_are_definitions() {
    names(
        "for i, (j, k) in items:\n    pass",
        &["i", "j", "k"],
        &["items"],
    );
    let analysis = names(
        "with open(p) as fh:\n    data = fh.read()",
        &["data", "fh"],
        &["p"],
    );
    assert_eq!(analysis.builtins_read, set(&["open"]));
    // Bound only when the handler runs: the old value may survive.
    names(
        "try:\n    run()\nexcept ValueError as err:\n    pass",
        &["err"],
        &["err", "run"],
    );
}

#[test]
fn loop_bodies_are_taken_to_run() {
    names("for i in range(3):\n    total = i", &["i", "total"], &[]);
    names("while cond():\n    step = 1", &["step"], &["cond"]);
}

#[test]
fn a_name_bound_in_only_some_branches_is_also_read() {
    names(
        "if c:\n    x = 1\nelse:\n    x = 2\nprint(x)",
        &["x"],
        &["c"],
    );
    names("if c:\n    y = 1", &["y"], &["c", "y"]);
    names(
        "if c:\n    y = 1\nelif d:\n    y = 2\nelse:\n    z = 3",
        &["y", "z"],
        &["c", "d", "y", "z"],
    );
    names(
        "try:\n    import ujson as json\nexcept ImportError:\n    import json",
        &["json"],
        &[],
    );
    names("y = 0\nif c:\n    y = 1", &["y"], &["c"]);
    names(
        "match cmd:\n    case [verb, obj]:\n        a = verb\n    case _:\n        a = None",
        &["a", "obj", "verb"],
        &["cmd", "obj", "verb"],
    );
}

#[test]
fn walrus_binds_at_top_level_even_inside_a_comprehension() {
    names("if (n := len(xs)) > 3:\n    pass", &["n"], &["xs"]);
    names(
        "ys = [y for x in xs if (y := f(x))]",
        &["y", "ys"],
        &["f", "xs"],
    );
}

#[test]
fn comprehension_variables_stay_inside() {
    names("[x for x in range(3)]", &[], &[]);
    names(
        "{k: v for k, v in pairs.items() if v > lim}",
        &[],
        &["lim", "pairs"],
    );
    names("sum(a * b for a in xs for b in a)", &[], &["xs"]);
}

#[test]
fn global_assignment_in_a_function_defines_and_reads_the_name() {
    names(
        "def setup():\n    global cfg\n    cfg = load()",
        &["cfg", "setup"],
        &["cfg", "load"],
    );
    // A global declared but only read is just a read.
    names(
        "def show():\n    global cfg\n    print(cfg)",
        &["show"],
        &["cfg"],
    );
}

#[test]
fn del_removes_a_name() {
    let analysis = names("del x", &[], &["x"]);
    assert_eq!(analysis.deletes, set(&["x"]));
    let analysis = names("x = 1\ndel x", &[], &[]);
    assert_eq!(analysis.deletes, set(&["x"]));
    let analysis = names("del x\nx = 2", &["x"], &["x"]);
    assert!(analysis.deletes.is_empty());
}

#[test]
fn mutation_through_a_name_reads_it_and_marks_it_mutated() {
    for (code, name) in [
        ("df['a'] = 1", "df"),
        ("obj.attr = v", "obj"),
        ("x[0] += 1", "x"),
        ("del d['k']", "d"),
        ("lst.append(x)", "lst"),
        ("df.drop(columns=['a'], inplace=True)", "df"),
        ("a.b.c.update(z)", "a"),
        ("df.loc[0, 'a'] = 2", "df"),
        ("print(stack.pop())", "stack"),
    ] {
        let analysis = py(code);
        assert_eq!(analysis.mode, Mode::Names, "{code}");
        assert!(analysis.reads.contains(name), "{code} reads {name}");
        assert_eq!(analysis.mutates, set(&[name]), "{code} mutates {name}");
        assert!(analysis.defines.is_empty(), "{code}");
    }
}

#[test]
fn known_pure_methods_are_not_mutations() {
    for code in [
        "df.head()",
        "df.drop(columns=['a'])",
        "s.split(',')",
        "df.groupby('k').mean()",
        "df.plot.bar()",
        "'a,b'.split(',')",
    ] {
        let analysis = py(code);
        assert!(
            analysis.mutates.is_empty(),
            "{code}: {:?}",
            analysis.mutates
        );
    }
}

#[test]
fn mutating_a_name_bound_by_the_same_cell_is_a_definition() {
    let analysis = names("lst = []\nlst.append(1)", &["lst"], &[]);
    assert!(analysis.mutates.is_empty());
    // A module imported by the cell is not changed by calling into it.
    let analysis = names(
        "import numpy as np\nnp.random.seed(0)\nx = np.zeros(3)",
        &["np", "x"],
        &[],
    );
    assert!(analysis.mutates.is_empty());
    assert_eq!(analysis.imports, set(&["np"]));
}

#[test]
fn builtins_are_reported_apart() {
    let analysis = names("print(len(xs), _5, Out[3])", &[], &["xs"]);
    assert_eq!(analysis.builtins_read, set(&["Out", "_5", "len", "print"]));
}

#[test]
fn code_that_reaches_any_name_is_flagged() {
    everything("from m import *", "import *");
    everything("exec('x = 1')", "exec()");
    everything("y = eval(expr)", "eval()");
    everything("globals()['x'] = 1", "globals()");
    everything("print(locals())", "locals()");
    everything("vars()", "vars()");
    everything("get_ipython().run_cell('x = 1')", "run_cell");
    everything("get_ipython().user_ns['x'] = 1", "user_ns");
    everything("%run script.py", "%run");
    everything("%load snippet.py", "%load");
    everything("%store -r data", "%store -r");
    everything("%reset -f", "%reset");
}

#[test]
fn flagged_code_keeps_the_names_it_shows() {
    let analysis = everything("x = 1\nexec(code)", "exec()");
    assert_eq!(analysis.defines, set(&["x"]));
    assert_eq!(analysis.reads, set(&["code"]));
}

#[test]
fn harmless_uses_of_those_names_are_not_flagged() {
    names("def f():\n    return locals()", &["f"], &[]);
    names("v = vars(obj)", &["v"], &["obj"]);
    names("def exec(s):\n    pass\nexec('x')", &["exec"], &[]);
    names("get_ipython().system('ls')", &[], &[]);
}

#[test]
fn other_language_cell_magics_are_flagged() {
    for code in [
        "%%bash\necho hi > out.txt",
        "%%sql\nSELECT * FROM t",
        "%%script python3\nprint(1)",
        "%%R -i df\nsummary(df)",
        "\n\n%%sh\nls",
        "%%somethingnew\nwhatever",
    ] {
        let analysis = py(code);
        match &analysis.mode {
            Mode::Everything { reason } => assert!(reason.contains("cell magic"), "{code}"),
            other => panic!("{code:?}: {other:?}"),
        }
    }
}

#[test]
fn python_cell_magics_are_read() {
    names("%%time\nz = w * 2", &["z"], &["w"]);
    names("%%prun\nz = w * 2", &["z"], &["w"]);
    // %%timeit runs its code inside a function: reads, defines nothing.
    names(
        "%%timeit -n 10 -r 3 setup = s0\nq = r + setup",
        &[],
        &["r", "s0"],
    );
    names("%%capture out --no-stderr\nprint(v)", &["out"], &["v"]);
    names("%%capture\nprint(v)", &[], &["v"]);
}

#[test]
fn display_cell_magics_touch_no_names() {
    names("%%html\n<b>{x}</b>", &[], &[]);
    names("%%javascript\nconsole.log(1)", &[], &[]);
    names("%%writefile {fname}\nprint(1)", &[], &["fname"]);
}

#[test]
fn line_magics_are_ignored_but_the_rest_is_read() {
    names("%matplotlib inline\nx = 1", &["x"], &[]);
    names(
        "%load_ext autoreload\n%autoreload 2\ny = f(x)",
        &["y"],
        &["f", "x"],
    );
    names("x = %who_ls", &["x"], &[]);
    names("%env TOKEN={secret}", &[], &["secret"]);
}

#[test]
fn time_magics_read_their_statement() {
    names("%time y = f(x)", &["y"], &["f", "x"]);
    names("%timeit g(x)", &[], &["g", "x"]);
    names("%timeit -n 10 -r 2 z = h()", &[], &["h"]);
    names("%prun -s cumulative run(data)", &[], &["data", "run"]);
}

#[test]
fn xdel_deletes() {
    let analysis = names("%xdel big", &[], &["big"]);
    assert_eq!(analysis.deletes, set(&["big"]));
}

#[test]
fn shell_commands_read_only_what_they_interpolate() {
    names("!pip install foo", &[], &[]);
    names(
        "!echo {path} $name $$HOME {{literal}}",
        &[],
        &["name", "path"],
    );
    names("files = !ls {folder}", &["files"], &["folder"]);
    names("!!ls {os.getcwd()}", &[], &["os"]);
}

#[test]
fn help_reads_nothing() {
    names("x?", &[], &[]);
    names("??obj.method", &[], &[]);
}

#[test]
fn syntax_errors_are_order_only_with_the_line() {
    order_only(&py("x = ("), "syntax error at line 1");
    order_only(&py("a = 1\nb = = 2"), "syntax error at line 2");
    order_only(&py("%%time\nx = 1\ny = ("), "syntax error at line 3");
}

#[test]
fn oversized_cells_are_order_only() {
    let code = "x = 1\n".repeat(MAX_CELL_BYTES / 6 + 1);
    order_only(&py(&code), "byte limit");
}

#[test]
fn other_languages_are_order_only() {
    order_only(&analyse("x <- 1", "R"), "language `R`");
    order_only(&analyse("echo hi", "bash"), "language `bash`");
    assert_eq!(analyse("x = 1", "Python").mode, Mode::Names);
}

#[test]
fn the_analysis_round_trips_through_json() {
    for analysis in [
        py("import pandas as pd\ndf = pd.read_csv(path)\nlst.append(1)\ndel old"),
        py("%%bash\nls"),
        py("x = ("),
    ] {
        let json = serde_json::to_string(&analysis).unwrap();
        let back: Analysis = serde_json::from_str(&json).unwrap();
        assert_eq!(back, analysis);
    }
    let json = serde_json::to_value(py("x = (")).unwrap();
    assert_eq!(json["mode"]["kind"], "order_only");
}

/// CPU time of this thread: the machine may be shared, and wall time then
/// says more about the neighbours than about the code.
fn thread_cpu_time() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Prints parse and analysis timings for a 100-line and a 10,000-line cell
/// (`cargo test --release --lib dataflow -- --ignored --nocapture
/// --test-threads=1`). The budget: 1 ms and 50 ms.
#[test]
#[ignore]
fn bench_analyse() {
    let block = [
        "import numpy as np",
        "df = load(path)",
        "df['total'] = df['a'] + df['b']",
        "for i, row in enumerate(rows):",
        "    acc += row.value * weights[i]",
        "def helper(x, y=3):",
        "    return np.sqrt(x * y) + offset",
        "if flag:",
        "    result = [v for v in values if v > threshold]",
        "print(result, df.head())",
    ]
    .join("\n")
        + "\n";
    for lines in [100, 10_000] {
        let code = block.repeat(lines / 10);
        let rounds = if lines == 100 { 2000 } else { 20 };
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_time());
        for _ in 0..rounds {
            std::hint::black_box(ruff_python_parser::parse_unchecked_source(
                &code,
                ruff_python_ast::PySourceType::Ipynb,
            ));
        }
        let (parse_wall, parse_cpu) = (wall.elapsed() / rounds, (thread_cpu_time() - cpu) / rounds);
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_time());
        for _ in 0..rounds {
            std::hint::black_box(py(&code));
        }
        let (all_wall, all_cpu) = (wall.elapsed() / rounds, (thread_cpu_time() - cpu) / rounds);
        println!(
            "analyse {lines} lines ({} bytes): {all_cpu:?} CPU ({all_wall:?} wall) per cell, \
             of which parsing {parse_cpu:?} CPU ({parse_wall:?} wall)",
            code.len()
        );
    }
}
