//! The Python reading behind [`super::analyse`]: ruff's parser in IPython
//! mode, and a walk over its syntax tree that follows Python's scoping rules.
//!
//! # Rules (each has a unit test below)
//!
//! Scopes. The cell's top level is read in order: a name read before the
//! cell bound it is a *read*. Function and lambda bodies run later, when
//! called, so every global name they read (not a parameter or a local of
//! theirs) counts as read by the cell that defines them: a later call reads
//! the value current then, and that value came from some earlier execution.
//! Class bodies and comprehensions run at once; their local names are theirs.
//!
//! Branches. A name bound in only some branches of an `if`/`elif`/`else`,
//! `try`/`except` or `match` (or in an `if` without `else`) might not be
//! bound by this execution, so the value from before may survive: the cell
//! defines *and reads* it. Loop bodies (`for`, `while`) are taken to run at
//! least once: an empty loop is rare, and counting every loop variable as a
//! read would chain every training loop to its previous run.
//!
//! Mutation. `df['a'] = 1`, `obj.attr = v`, `x[0] += 1`, `del d['k']` and a
//! method call on a name (`lst.append(x)`, `a.b.update(c)`) change the value
//! the name refers to: the name is read and lands in `mutates`. Methods
//! known not to change their receiver ([`PURE_METHODS`]: `head`, `copy`,
//! `mean`, `split`, `plot`, …) do not count unless called with
//! `inplace=True`. Mutation inside a function body is only a read (it happens
//! when the function is called, which the analysis of the calling cell does
//! not see). Passing a name to a function that changes it is not seen either.
//!
//! `global`. A function that assigns a name it declares `global` defines it
//! when called; the cell that defines the function is taken to define it
//! (and to read it, as the call may not happen).
//!
//! `del x` removes x (it lands in `deletes` unless bound again later in the
//! cell) and reads it when the cell had not bound it.
//!
//! Everything. `exec`, `eval`, `globals()`, module-level `locals()`/`vars()`,
//! `from m import *`, `get_ipython().run_cell(…)` and friends, the line
//! magics that run or restore code (`%run`, `%load`, `%store -r`, `%reset`,
//! `%recall`, `%rerun`, `%macro`, `%paste`, `%pylab`, `%edit`, …), and
//! cell magics that run something other than Python (`%%bash`, `%%sql`,
//! `%%script`, `%%R`, any unknown cell magic): [`Mode::Everything`].
//!
//! IPython syntax. `%%time`, `%%prun`, `%%capture [var]` run their body as
//! Python in the user's namespace: read as usual (`%%capture out` binds
//! `out`). `%%timeit` and `%timeit` run their code inside a function: it
//! reads, but defines nothing. `%time` and `%prun` read their statement.
//! Display cell magics (`%%html`, `%%javascript`, `%%latex`, `%%markdown`,
//! `%%svg`) and `%%writefile` touch no names. `!cmd`, `!!cmd` and every
//! other line magic read only the names they interpolate (`{expr}`,
//! `$name`), which IPython expands from the namespace. `x?` reads nothing.
//! `%xdel x` deletes x. `files = !ls` binds `files`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{
    self as ast, ExceptHandler, Expr, ExprContext, IpyEscapeKind, Parameters, Pattern,
    PySourceType, Stmt,
};
use ruff_python_parser::{parse_expression, parse_unchecked_source};

use super::{Analysis, Mode};

/// Methods that return a new value and leave their receiver alone (the
/// common ones of str, list, dict, set, pandas, numpy, matplotlib axes,
/// scikit-learn estimators after fitting). Anything not listed is taken to
/// mutate its receiver.
const PURE_METHODS: &[&str] = &[
    // str / bytes
    "capitalize",
    "casefold",
    "center",
    "count",
    "decode",
    "encode",
    "endswith",
    "find",
    "format",
    "format_map",
    "index",
    "isalnum",
    "isalpha",
    "isdigit",
    "isidentifier",
    "islower",
    "isnumeric",
    "isspace",
    "istitle",
    "isupper",
    "join",
    "ljust",
    "lower",
    "lstrip",
    "partition",
    "removeprefix",
    "removesuffix",
    "replace",
    "rfind",
    "rindex",
    "rjust",
    "rpartition",
    "rsplit",
    "rstrip",
    "split",
    "splitlines",
    "startswith",
    "strip",
    "swapcase",
    "title",
    "upper",
    "zfill",
    // dict / set / list (non-mutating)
    "copy",
    "get",
    "items",
    "keys",
    "values",
    "difference",
    "intersection",
    "isdisjoint",
    "issubset",
    "issuperset",
    "symmetric_difference",
    "union",
    // pandas / numpy (returning new objects unless inplace=True)
    "abs",
    "agg",
    "aggregate",
    "all",
    "any",
    "apply",
    "applymap",
    "argmax",
    "argmin",
    "argsort",
    "astype",
    "between",
    "clip",
    "corr",
    "cov",
    "cummax",
    "cummin",
    "cumprod",
    "cumsum",
    "describe",
    "diff",
    "dot",
    "drop",
    "drop_duplicates",
    "dropna",
    "duplicated",
    "equals",
    "explode",
    "fillna",
    "filter",
    "first",
    "flatten",
    "groupby",
    "head",
    "hist",
    "idxmax",
    "idxmin",
    "info",
    "isin",
    "isna",
    "isnull",
    "item",
    "iterrows",
    "itertuples",
    "last",
    "map",
    "max",
    "mean",
    "median",
    "melt",
    "memory_usage",
    "merge",
    "min",
    "mode",
    "nlargest",
    "notna",
    "notnull",
    "nsmallest",
    "nunique",
    "pct_change",
    "pivot",
    "pivot_table",
    "prod",
    "quantile",
    "query",
    "rank",
    "ravel",
    "reindex",
    "rename",
    "resample",
    "reset_index",
    "reshape",
    "rolling",
    "round",
    "sample",
    "select_dtypes",
    "set_index",
    "shift",
    "sort_index",
    "sort_values",
    "squeeze",
    "std",
    "sum",
    "tail",
    "to_csv",
    "to_dict",
    "to_excel",
    "to_frame",
    "to_json",
    "to_list",
    "to_markdown",
    "to_numpy",
    "to_parquet",
    "to_string",
    "tolist",
    "transpose",
    "unique",
    "value_counts",
    "var",
    "where",
    // plotting (draws, does not change the data)
    "area",
    "bar",
    "barh",
    "box",
    "density",
    "kde",
    "line",
    "pie",
    "plot",
    "scatter",
    // estimators and tensors (read-only uses)
    "cpu",
    "detach",
    "numpy",
    "predict",
    "predict_log_proba",
    "predict_proba",
    "score",
    "size",
    "transform",
];

/// Python's builtins plus the names IPython puts in every namespace. They
/// are reported apart ([`Analysis::builtins_read`]).
const BUILTINS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BaseExceptionGroup",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "Ellipsis",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "ExceptionGroup",
    "False",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "None",
    "NotADirectoryError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "True",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
    "__build_class__",
    "__builtins__",
    "__debug__",
    "__doc__",
    "__import__",
    "__loader__",
    "__name__",
    "__package__",
    "__spec__",
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
    // IPython's namespace
    "In",
    "Out",
    "_",
    "__",
    "___",
    "_dh",
    "_i",
    "_ih",
    "_ii",
    "_iii",
    "_oh",
    "display",
    "get_ipython",
];

/// `get_ipython()` attributes that run code or change the namespace.
const IPYTHON_RUNNERS: &[&str] = &[
    "del_var",
    "drop_by_id",
    "ev",
    "ex",
    "magic",
    "push",
    "reset",
    "run_ast_nodes",
    "run_cell",
    "run_cell_magic",
    "run_code",
    "run_line_magic",
    "safe_execfile",
    "safe_execfile_ipy",
    "safe_run_module",
    "user_global_ns",
    "user_ns",
];

/// Line magics that run, load or restore code, or wipe the namespace.
const EVERYTHING_LINE_MAGICS: &[&str] = &[
    "aimport",
    "cpaste",
    "ed",
    "edit",
    "load",
    "loadpy",
    "macro",
    "paste",
    "pylab",
    "recall",
    "rerun",
    "reset",
    "reset_selective",
    "run",
];

/// Cell magics whose body is not code of the kernel: no names.
const DISPLAY_CELL_MAGICS: &[&str] = &[
    "HTML",
    "file",
    "html",
    "javascript",
    "js",
    "latex",
    "markdown",
    "svg",
    "writefile",
];

/// Lookups happen for every name and method call: hash them once.
static BUILTIN_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| BUILTINS.iter().copied().collect());
static PURE_METHOD_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| PURE_METHODS.iter().copied().collect());

fn is_builtin(name: &str) -> bool {
    BUILTIN_SET.contains(name) || is_history_name(name)
}

/// `_12`, `_i12`: IPython's output and input history, not user data.
fn is_history_name(name: &str) -> bool {
    let digits = name
        .strip_prefix("_i")
        .or_else(|| name.strip_prefix('_'))
        .unwrap_or("");
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn analyse_python(code: &str) -> Analysis {
    let mut analyser = Analyser::new();
    // IPython drops leading blank lines before looking for a cell magic
    // (IPython.core.inputtransformer2.leading_empty_lines).
    let mut start = 0;
    for line in code.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += line.len();
    }
    let rest = &code[start..];
    let skipped_lines = code[..start].matches('\n').count();
    let Some(header_line) = rest.strip_prefix("%%") else {
        return match analyser.module_text(code, 0) {
            Ok(()) => analyser.finish(),
            Err(reason) => Analysis::order_only(reason),
        };
    };
    let (header, body) = header_line.split_once('\n').unwrap_or((header_line, ""));
    let header = header.trim_end_matches('\r');
    let (name, args) = header
        .trim_start()
        .split_once(char::is_whitespace)
        .unwrap_or((header.trim(), ""));
    let body_line = skipped_lines + 1;
    // IPython expands `{expr}` and `$name` on a cell magic's line.
    analyser.interpolate(args);
    let result = match name {
        "time" | "prun" | "debug" => analyser.module_text(body, body_line),
        "capture" => {
            let target = args
                .split_whitespace()
                .rfind(|word| !word.starts_with('-'))
                .map(str::to_owned);
            let result = analyser.module_text(body, body_line);
            if let Some(target) = target {
                analyser.bind(&target);
            }
            result
        }
        "timeit" => {
            let setup = strip_options(args, &["-n", "-r", "-p"]);
            analyser.function_text(&format!("{setup}\n{body}"), body_line - 1)
        }
        name if DISPLAY_CELL_MAGICS.contains(&name) => Ok(()),
        name => {
            analyser.everything(format!(
                "cell magic `%%{name}` runs code that cannot be read for names"
            ));
            Ok(())
        }
    };
    match result {
        Ok(()) => analyser.finish(),
        Err(reason) => Analysis::order_only(reason),
    }
}

/// Drops leading `-x` options (and the value of those in `with_value`
/// written apart, `-n 10`) from a magic's argument line.
fn strip_options<'s>(mut args: &'s str, with_value: &[&str]) -> &'s str {
    loop {
        let trimmed = args.trim_start();
        if !trimmed.starts_with('-') {
            return trimmed;
        }
        let (option, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        args = rest;
        if with_value.contains(&option) {
            let rest = rest.trim_start();
            args = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r);
        }
    }
}

/// The first syntax error of `code`, as a reason.
fn syntax_error(
    code: &str,
    errors: &[ruff_python_parser::ParseError],
    first_line: usize,
) -> String {
    let error = &errors[0];
    let offset = usize::from(error.location.start()).min(code.len());
    let line = first_line + code[..offset].matches('\n').count() + 1;
    format!("syntax error at line {line}: {}", error.error)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Module,
    /// `deferred`: the body runs when called, not now (`def`, `lambda`);
    /// `%timeit`'s code runs now, inside a function.
    Function {
        deferred: bool,
    },
    Class,
    Comprehension,
}

struct Scope {
    kind: Kind,
    /// Module and class: names bound so far, in order. Function: every local
    /// (Python decides locals for the whole body). Comprehension: its
    /// targets.
    bound: HashSet<String>,
    /// Module and class: undo log of `bound` (name, was it bound before) so
    /// each branch of an `if` can start from the same state cheaply.
    journal: Vec<(String, bool)>,
    /// Function: names declared `global`.
    globals: HashSet<String>,
}

impl Scope {
    fn new(kind: Kind, bound: HashSet<String>, globals: HashSet<String>) -> Self {
        Scope {
            kind,
            bound,
            journal: Vec::new(),
            globals,
        }
    }

    fn insert(&mut self, name: &str) {
        if !self.bound.contains(name) {
            self.journal.push((name.to_owned(), false));
            self.bound.insert(name.to_owned());
        }
    }

    fn remove(&mut self, name: &str) {
        if self.bound.remove(name) {
            self.journal.push((name.to_owned(), true));
        }
    }

    fn rollback(&mut self, mark: usize) {
        while self.journal.len() > mark {
            let (name, was_bound) = self.journal.pop().expect("journal longer than mark");
            if was_bound {
                self.bound.insert(name);
            } else {
                self.bound.remove(&name);
            }
        }
    }

    /// Names bound now that were not bound at `mark`.
    fn added_since(&self, mark: usize) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut added = HashSet::new();
        for (name, was_bound) in &self.journal[mark..] {
            if seen.insert(name.as_str()) && !was_bound && self.bound.contains(name) {
                added.insert(name.clone());
            }
        }
        added
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Define,
    Delete,
}

/// Where a name read in the current scope comes from.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    /// A local of a function, class or comprehension on the way.
    Local,
    /// The module namespace; `bound`: already bound earlier by this cell.
    Global { bound: bool },
}

struct Analyser {
    scopes: Vec<Scope>,
    reads: BTreeSet<String>,
    builtins_read: BTreeSet<String>,
    mutates: BTreeSet<String>,
    /// The last thing the cell did to each global name.
    events: HashMap<String, Event>,
    /// Global names whose latest binding in this cell is an import.
    imported: HashSet<String>,
    everything: Option<String>,
}

impl Analyser {
    fn new() -> Self {
        Analyser {
            scopes: vec![Scope::new(Kind::Module, HashSet::new(), HashSet::new())],
            reads: BTreeSet::new(),
            builtins_read: BTreeSet::new(),
            mutates: BTreeSet::new(),
            events: HashMap::new(),
            imported: HashSet::new(),
            everything: None,
        }
    }

    fn finish(self) -> Analysis {
        let mut defines = BTreeSet::new();
        let mut deletes = BTreeSet::new();
        for (name, event) in self.events {
            match event {
                Event::Define => defines.insert(name),
                Event::Delete => deletes.insert(name),
            };
        }
        let imports = self
            .imported
            .into_iter()
            .filter(|name| defines.contains(name))
            .collect();
        let mutates = self
            .mutates
            .into_iter()
            .filter(|name| !defines.contains(name) && !deletes.contains(name))
            .collect();
        Analysis {
            mode: match self.everything {
                None => Mode::Names,
                Some(reason) => Mode::Everything { reason },
            },
            defines,
            deletes,
            reads: self.reads,
            mutates,
            imports,
            builtins_read: self.builtins_read,
        }
    }

    fn everything(&mut self, reason: String) {
        self.everything.get_or_insert(reason);
    }

    /// Reads a whole module-level text (the cell, or a cell magic's body).
    fn module_text(&mut self, code: &str, first_line: usize) -> Result<(), String> {
        let parsed = parse_unchecked_source(code, PySourceType::Ipynb);
        if !parsed.errors().is_empty() {
            return Err(syntax_error(code, parsed.errors(), first_line));
        }
        self.visit_body(&parsed.syntax().body);
        Ok(())
    }

    /// Reads code that runs now but inside a function (`%timeit`).
    fn function_text(&mut self, code: &str, first_line: usize) -> Result<(), String> {
        let parsed = parse_unchecked_source(code, PySourceType::Ipynb);
        if !parsed.errors().is_empty() {
            return Err(syntax_error(code, parsed.errors(), first_line));
        }
        let body = &parsed.syntax().body;
        let locals = Locals::of(None, body);
        self.scopes.push(Scope::new(
            Kind::Function { deferred: false },
            locals.bound,
            locals.globals,
        ));
        self.visit_body(body);
        self.scopes.pop();
        Ok(())
    }

    fn record_read(&mut self, name: &str) {
        if is_builtin(name) {
            self.builtins_read.insert(name.to_owned());
        } else {
            self.reads.insert(name.to_owned());
        }
    }

    fn module_bound(&self, name: &str) -> bool {
        self.scopes[0].bound.contains(name)
    }

    fn resolve(&self, name: &str) -> Resolved {
        let innermost = self.scopes.len() - 1;
        for (i, scope) in self.scopes.iter().enumerate().rev() {
            match scope.kind {
                Kind::Module => {
                    return Resolved::Global {
                        bound: scope.bound.contains(name),
                    };
                }
                Kind::Function { .. } if scope.globals.contains(name) => {
                    return Resolved::Global {
                        bound: self.module_bound(name),
                    };
                }
                // A class body's names are not visible to the functions in it.
                Kind::Class if i != innermost => continue,
                _ if scope.bound.contains(name) => return Resolved::Local,
                _ => {}
            }
        }
        unreachable!("the module scope is always first")
    }

    fn load(&mut self, name: &str) {
        if self.resolve(name) == (Resolved::Global { bound: false }) {
            self.record_read(name);
        }
    }

    /// Binds `name` in the module namespace.
    fn bind(&mut self, name: &str) {
        self.scopes[0].insert(name);
        self.events.insert(name.to_owned(), Event::Define);
        self.imported.remove(name);
    }

    /// A function's `global` assignment: defined when called, which may
    /// never happen, so the old value is read too.
    fn global_write(&mut self, name: &str) {
        if !self.module_bound(name) {
            self.record_read(name);
        }
        self.events.insert(name.to_owned(), Event::Define);
        self.imported.remove(name);
    }

    fn store_in(&mut self, index: usize, name: &str) {
        let scope = &mut self.scopes[index];
        match scope.kind {
            Kind::Module => self.bind(name),
            Kind::Function { .. } => {
                if scope.globals.contains(name) {
                    self.global_write(name);
                }
            }
            Kind::Class | Kind::Comprehension => scope.insert(name),
        }
    }

    fn store(&mut self, name: &str) {
        self.store_in(self.scopes.len() - 1, name);
    }

    /// Walrus: binds in the nearest scope that is not a comprehension.
    fn store_walrus(&mut self, name: &str) {
        let index = self
            .scopes
            .iter()
            .rposition(|scope| scope.kind != Kind::Comprehension)
            .unwrap_or(0);
        self.store_in(index, name);
    }

    fn import(&mut self, name: &str) {
        if self.scopes.len() == 1 {
            self.bind(name);
            self.imported.insert(name.to_owned());
        } else {
            self.store(name);
        }
    }

    fn delete(&mut self, name: &str) {
        let innermost = self.scopes.len() - 1;
        let scope = &mut self.scopes[innermost];
        match scope.kind {
            Kind::Module => {
                if !scope.bound.contains(name) {
                    self.record_read(name);
                }
                self.scopes[0].remove(name);
                self.events.insert(name.to_owned(), Event::Delete);
                self.imported.remove(name);
            }
            Kind::Function { .. } => {
                if scope.globals.contains(name) {
                    self.global_write(name);
                }
            }
            Kind::Class | Kind::Comprehension => scope.remove(name),
        }
    }

    fn executes_now(&self) -> bool {
        !self
            .scopes
            .iter()
            .any(|scope| scope.kind == Kind::Function { deferred: true })
    }

    /// The value `name` refers to may have changed in place.
    fn mutate(&mut self, name: &str) {
        if !self.executes_now() {
            return;
        }
        match self.resolve(name) {
            Resolved::Local => {}
            Resolved::Global { bound: true } => {
                // A module the cell imported itself: calling its functions or
                // setting its options does not make it a new value.
                if !self.imported.contains(name) {
                    self.events.insert(name.to_owned(), Event::Define);
                }
            }
            Resolved::Global { bound: false } => {
                self.mutates.insert(name.to_owned());
            }
        }
    }

    /// Runs `count` alternative branches from the same state; a name bound
    /// by some but not all of them is read as well as defined.
    fn branches(&mut self, count: usize, exhaustive: bool, mut run: impl FnMut(&mut Self, usize)) {
        let index = self.scopes.len() - 1;
        let kind = self.scopes[index].kind;
        if !matches!(kind, Kind::Module | Kind::Class) {
            for i in 0..count {
                run(self, i);
            }
            return;
        }
        let mark = self.scopes[index].journal.len();
        let mut added = Vec::with_capacity(count + 1);
        for i in 0..count {
            run(self, i);
            added.push(self.scopes[index].added_since(mark));
            self.scopes[index].rollback(mark);
        }
        if !exhaustive {
            added.push(HashSet::new());
        }
        let union: HashSet<String> = added.iter().flatten().cloned().collect();
        let mut conditional: Vec<&String> = union
            .iter()
            .filter(|name| !added.iter().all(|branch| branch.contains(*name)))
            .collect();
        conditional.sort();
        for name in &union {
            self.scopes[index].insert(name);
        }
        for name in conditional {
            match kind {
                Kind::Module => self.record_read(name),
                // A class attribute that may be missing falls back to the
                // enclosing names: read it from there.
                _ => {
                    let class = self.scopes.pop().expect("class scope");
                    self.load(name);
                    self.scopes.push(class);
                }
            }
        }
    }

    fn function_scope(&mut self, parameters: Option<&Parameters>, body: FunctionBody<'_>) {
        let locals = match body {
            FunctionBody::Stmts(stmts) => Locals::of(parameters, stmts),
            FunctionBody::Expr(expr) => Locals::of_expr(parameters, expr),
        };
        self.scopes.push(Scope::new(
            Kind::Function { deferred: true },
            locals.bound,
            locals.globals,
        ));
        match body {
            FunctionBody::Stmts(stmts) => self.visit_body(stmts),
            FunctionBody::Expr(expr) => self.visit_expr(expr),
        }
        self.scopes.pop();
    }

    /// Defaults and annotations are evaluated where the function is defined.
    fn parameter_defaults(&mut self, parameters: &Parameters) {
        for parameter in parameters.iter() {
            if let Some(default) = parameter.default() {
                self.visit_expr(default);
            }
            if let Some(annotation) = parameter.annotation() {
                self.visit_expr(annotation);
            }
        }
    }

    fn comprehension(&mut self, generators: &[ast::Comprehension], elements: &[&Expr]) {
        let Some(first) = generators.first() else {
            return;
        };
        // The first iterable is evaluated in the enclosing scope.
        self.visit_expr(&first.iter);
        let mut targets = HashSet::new();
        for generator in generators {
            collect_target_names(&generator.target, &mut targets);
        }
        self.scopes
            .push(Scope::new(Kind::Comprehension, targets, HashSet::new()));
        for (i, generator) in generators.iter().enumerate() {
            if i > 0 {
                self.visit_expr(&generator.iter);
            }
            for condition in &generator.ifs {
                self.visit_expr(condition);
            }
        }
        for element in elements {
            self.visit_expr(element);
        }
        self.scopes.pop();
    }

    fn call(&mut self, call: &ast::ExprCall) {
        match &*call.func {
            Expr::Name(func) => {
                let name = func.id.as_str();
                let shadowed = self.resolve(name) != (Resolved::Global { bound: false });
                if shadowed {
                    return;
                }
                let at_module_level = !self
                    .scopes
                    .iter()
                    .any(|scope| matches!(scope.kind, Kind::Function { .. }));
                let no_args = call.arguments.args.is_empty() && call.arguments.keywords.is_empty();
                match name {
                    "exec" | "eval" | "globals" => {
                        self.everything(format!("`{name}()` can read and define any name"));
                    }
                    "locals" | "vars" if no_args && at_module_level => {
                        self.everything(format!("`{name}()` can read and define any name"));
                    }
                    _ => {}
                }
            }
            Expr::Attribute(method) => {
                let Some(receiver) = root_name(&method.value) else {
                    return;
                };
                let inplace = call.arguments.keywords.iter().any(|keyword| {
                    keyword
                        .arg
                        .as_ref()
                        .is_some_and(|arg| arg.as_str() == "inplace")
                        && matches!(
                            keyword.value,
                            Expr::BooleanLiteral(ast::ExprBooleanLiteral { value: true, .. })
                        )
                });
                if inplace || !PURE_METHOD_SET.contains(method.attr.as_str()) {
                    self.mutate(receiver);
                }
            }
            _ => {}
        }
    }

    /// `get_ipython().run_cell(…)` and the like.
    fn ipython_runner(&mut self, attribute: &ast::ExprAttribute) {
        let Expr::Call(call) = &*attribute.value else {
            return;
        };
        let is_get_ipython =
            matches!(&*call.func, Expr::Name(func) if func.id.as_str() == "get_ipython");
        if is_get_ipython && IPYTHON_RUNNERS.contains(&attribute.attr.as_str()) {
            self.everything(format!(
                "`get_ipython().{}` can read and define any name",
                attribute.attr
            ));
        }
    }

    fn escape(&mut self, kind: IpyEscapeKind, value: &str) {
        match kind {
            IpyEscapeKind::Shell | IpyEscapeKind::ShCap => self.interpolate(value),
            IpyEscapeKind::Magic | IpyEscapeKind::Magic2 => self.line_magic(value),
            IpyEscapeKind::Help | IpyEscapeKind::Help2 => {}
            IpyEscapeKind::Quote | IpyEscapeKind::Quote2 | IpyEscapeKind::Paren => {
                // `/f a b` calls f(a, b); `,f a b` calls f("a", "b").
                let value = value.trim_start();
                let (func, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
                self.python_names(func);
                if kind == IpyEscapeKind::Paren {
                    self.python_names(&format!("({rest},)"));
                }
            }
        }
    }

    fn line_magic(&mut self, value: &str) {
        let value = value.trim_start_matches('%').trim_start();
        let (name, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        match name {
            "time" | "debug" => self.magic_statement(name, rest, false),
            "prun" => {
                let rest = strip_options(rest, &["-D", "-l", "-s", "-T"]);
                self.magic_statement(name, rest, false);
            }
            "timeit" => {
                let rest = strip_options(rest, &["-n", "-r", "-p"]);
                self.magic_statement(name, rest, true);
            }
            "store" if rest.split_whitespace().any(|word| word.starts_with("-r")) => {
                self.everything("`%store -r` restores names saved elsewhere".to_owned());
            }
            "store" => {
                for word in rest.split_whitespace() {
                    if is_identifier(word) {
                        self.load(word);
                    }
                }
            }
            "xdel" => {
                for word in rest.split_whitespace() {
                    if is_identifier(word) {
                        self.delete(word);
                    }
                }
            }
            name if EVERYTHING_LINE_MAGICS.contains(&name) => {
                self.everything(format!("`%{name}` can read and define any name"));
            }
            _ => self.interpolate(rest),
        }
    }

    /// `%time stmt`, `%timeit stmt`: the statement is Python.
    fn magic_statement(&mut self, magic: &str, code: &str, in_function: bool) {
        let result = if in_function {
            self.function_text(code, 0)
        } else {
            self.module_text(code, 0)
        };
        if let Err(reason) = result {
            self.everything(format!(
                "the code given to `%{magic}` was not read: {reason}"
            ));
        }
    }

    /// The names an expression reads, from a text that may not be Python.
    fn python_names(&mut self, text: &str) {
        if let Ok(parsed) = parse_expression(text.trim()) {
            self.visit_expr(&parsed.syntax().body);
        }
    }

    /// IPython expands `{expr}` and `$name` in shell commands and magic
    /// arguments from the user's namespace (`InteractiveShell.var_expand`).
    fn interpolate(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
                b'{' => {
                    let mut depth = 0;
                    let mut end = None;
                    for (j, &b) in bytes.iter().enumerate().skip(i) {
                        match b {
                            b'{' => depth += 1,
                            b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = Some(j);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let Some(end) = end else { break };
                    self.python_names(&text[i + 1..end]);
                    i = end + 1;
                }
                b'$' if bytes.get(i + 1) == Some(&b'$') => i += 2,
                b'$' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                    {
                        end += 1;
                    }
                    let name = &text[start..end];
                    if is_identifier(name) {
                        self.load(name);
                    }
                    i = end.max(start);
                }
                _ => i += 1,
            }
        }
    }

    fn pattern_bindings(&mut self, pattern: &Pattern) {
        match pattern {
            Pattern::MatchAs(ast::PatternMatchAs {
                name: Some(name), ..
            })
            | Pattern::MatchStar(ast::PatternMatchStar {
                name: Some(name), ..
            }) => self.store(name.as_str()),
            Pattern::MatchMapping(ast::PatternMatchMapping {
                rest: Some(rest), ..
            }) => self.store(rest.as_str()),
            _ => {}
        }
    }
}

#[derive(Clone, Copy)]
enum FunctionBody<'a> {
    Stmts(&'a [Stmt]),
    Expr(&'a Expr),
}

fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The name at the root of `a.b[c].d`.
fn root_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(name) => Some(name.id.as_str()),
        Expr::Attribute(attribute) => root_name(&attribute.value),
        Expr::Subscript(subscript) => root_name(&subscript.value),
        _ => None,
    }
}

fn collect_target_names(target: &Expr, names: &mut HashSet<String>) {
    match target {
        Expr::Name(name) => {
            names.insert(name.id.to_string());
        }
        Expr::Tuple(tuple) => tuple
            .elts
            .iter()
            .for_each(|e| collect_target_names(e, names)),
        Expr::List(list) => list
            .elts
            .iter()
            .for_each(|e| collect_target_names(e, names)),
        Expr::Starred(starred) => collect_target_names(&starred.value, names),
        _ => {}
    }
}

impl<'a> Visitor<'a> for Analyser {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(function) => {
                for decorator in &function.decorator_list {
                    self.visit_expr(&decorator.expression);
                }
                self.parameter_defaults(&function.parameters);
                if let Some(returns) = &function.returns {
                    self.visit_expr(returns);
                }
                // Bound before the body is read: a recursive call finds it.
                self.store(function.name.as_str());
                self.function_scope(
                    Some(&function.parameters),
                    FunctionBody::Stmts(&function.body),
                );
            }
            Stmt::ClassDef(class) => {
                for decorator in &class.decorator_list {
                    self.visit_expr(&decorator.expression);
                }
                if let Some(arguments) = &class.arguments {
                    self.visit_arguments(arguments);
                }
                self.scopes
                    .push(Scope::new(Kind::Class, HashSet::new(), HashSet::new()));
                self.visit_body(&class.body);
                self.scopes.pop();
                self.store(class.name.as_str());
            }
            Stmt::AugAssign(assign) => {
                self.visit_expr(&assign.value);
                match &*assign.target {
                    Expr::Name(name) => {
                        self.load(name.id.as_str());
                        self.store(name.id.as_str());
                    }
                    target => self.visit_expr(target),
                }
            }
            Stmt::AnnAssign(assign) => {
                if let Some(value) = &assign.value {
                    self.visit_expr(value);
                }
                self.visit_expr(&assign.annotation);
                // `x: int` alone binds nothing.
                if assign.value.is_some() || !assign.target.is_name_expr() {
                    self.visit_expr(&assign.target);
                }
            }
            Stmt::If(if_stmt) => {
                let exhaustive = if_stmt
                    .elif_else_clauses
                    .last()
                    .is_some_and(|clause| clause.test.is_none());
                self.visit_expr(&if_stmt.test);
                self.branches(
                    1 + if_stmt.elif_else_clauses.len(),
                    exhaustive,
                    |this, i| {
                        if i == 0 {
                            this.visit_body(&if_stmt.body);
                        } else {
                            let clause = &if_stmt.elif_else_clauses[i - 1];
                            if let Some(test) = &clause.test {
                                this.visit_expr(test);
                            }
                            this.visit_body(&clause.body);
                        }
                    },
                );
            }
            Stmt::Try(try_stmt) => {
                self.branches(1 + try_stmt.handlers.len(), true, |this, i| {
                    if i == 0 {
                        this.visit_body(&try_stmt.body);
                        this.visit_body(&try_stmt.orelse);
                    } else {
                        let ExceptHandler::ExceptHandler(handler) = &try_stmt.handlers[i - 1];
                        if let Some(type_) = &handler.type_ {
                            this.visit_expr(type_);
                        }
                        if let Some(name) = &handler.name {
                            this.store(name.as_str());
                        }
                        this.visit_body(&handler.body);
                    }
                });
                self.visit_body(&try_stmt.finalbody);
            }
            Stmt::Match(match_stmt) => {
                self.visit_expr(&match_stmt.subject);
                let exhaustive = match_stmt.cases.iter().any(|case| {
                    case.guard.is_none()
                        && matches!(
                            case.pattern,
                            Pattern::MatchAs(ast::PatternMatchAs { pattern: None, .. })
                        )
                });
                self.branches(match_stmt.cases.len(), exhaustive, |this, i| {
                    let case = &match_stmt.cases[i];
                    this.visit_pattern(&case.pattern);
                    if let Some(guard) = &case.guard {
                        this.visit_expr(guard);
                    }
                    this.visit_body(&case.body);
                });
            }
            Stmt::Import(import) => {
                for alias in &import.names {
                    let bound = match &alias.asname {
                        Some(asname) => asname.as_str(),
                        None => alias.name.split('.').next().unwrap_or(&alias.name),
                    };
                    self.import(bound);
                }
            }
            Stmt::ImportFrom(import) => {
                let module = import.module.as_ref().map_or("", |m| m.as_str());
                if module == "__future__" {
                    return;
                }
                for alias in &import.names {
                    if alias.name.as_str() == "*" {
                        self.everything(format!(
                            "`from {}{module} import *` can define any name",
                            ".".repeat(import.level as usize)
                        ));
                        continue;
                    }
                    let bound = alias.asname.as_ref().unwrap_or(&alias.name);
                    self.import(bound.as_str());
                }
            }
            Stmt::IpyEscapeCommand(command) => self.escape(command.kind, &command.value),
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        self.pattern_bindings(pattern);
        visitor::walk_pattern(self, pattern);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(name) => match name.ctx {
                ExprContext::Load => self.load(name.id.as_str()),
                ExprContext::Store => self.store(name.id.as_str()),
                ExprContext::Del => self.delete(name.id.as_str()),
                ExprContext::Invalid => {}
            },
            Expr::Named(named) => {
                self.visit_expr(&named.value);
                match &*named.target {
                    Expr::Name(name) => self.store_walrus(name.id.as_str()),
                    target => self.visit_expr(target),
                }
            }
            Expr::Lambda(lambda) => {
                if let Some(parameters) = &lambda.parameters {
                    self.parameter_defaults(parameters);
                }
                self.function_scope(
                    lambda.parameters.as_deref(),
                    FunctionBody::Expr(&lambda.body),
                );
            }
            Expr::ListComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::SetComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::Generator(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::DictComp(comp) => match &comp.key {
                Some(key) => self.comprehension(&comp.generators, &[key, &comp.value]),
                None => self.comprehension(&comp.generators, &[&comp.value]),
            },
            Expr::Attribute(attribute) => {
                self.ipython_runner(attribute);
                if matches!(attribute.ctx, ExprContext::Store | ExprContext::Del) {
                    if let Some(root) = root_name(&attribute.value) {
                        self.mutate(root);
                    }
                }
                self.visit_expr(&attribute.value);
            }
            Expr::Subscript(subscript) => {
                if matches!(subscript.ctx, ExprContext::Store | ExprContext::Del) {
                    if let Some(root) = root_name(&subscript.value) {
                        self.mutate(root);
                    }
                }
                self.visit_expr(&subscript.value);
                self.visit_expr(&subscript.slice);
            }
            Expr::Call(call) => {
                self.call(call);
                visitor::walk_expr(self, expr);
            }
            Expr::IpyEscapeCommand(command) => self.escape(command.kind, &command.value),
            _ => visitor::walk_expr(self, expr),
        }
    }
}

/// The local names of a function body, as Python decides them: every name
/// bound anywhere in the body (not in nested functions or classes) that is
/// not declared `global` or `nonlocal`.
#[derive(Default)]
struct Locals {
    bound: HashSet<String>,
    globals: HashSet<String>,
    nonlocals: HashSet<String>,
}

impl Locals {
    fn of(parameters: Option<&Parameters>, body: &[Stmt]) -> Self {
        let mut locals = Locals::with_parameters(parameters);
        locals.visit_body(body);
        locals.finish()
    }

    fn of_expr(parameters: Option<&Parameters>, body: &Expr) -> Self {
        let mut locals = Locals::with_parameters(parameters);
        locals.visit_expr(body);
        locals.finish()
    }

    fn with_parameters(parameters: Option<&Parameters>) -> Self {
        let mut locals = Locals::default();
        for parameter in parameters.into_iter().flat_map(|p| p.iter()) {
            locals.bound.insert(parameter.name().to_string());
        }
        locals
    }

    fn finish(mut self) -> Self {
        let Locals {
            bound,
            globals,
            nonlocals,
        } = &mut self;
        bound.retain(|name| !globals.contains(name) && !nonlocals.contains(name));
        self
    }
}

impl<'a> Visitor<'a> for Locals {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(function) => {
                self.bound.insert(function.name.to_string());
            }
            Stmt::ClassDef(class) => {
                self.bound.insert(class.name.to_string());
            }
            Stmt::Import(import) => {
                for alias in &import.names {
                    let bound = match &alias.asname {
                        Some(asname) => asname.to_string(),
                        None => alias.name.split('.').next().unwrap_or("").to_owned(),
                    };
                    self.bound.insert(bound);
                }
            }
            Stmt::ImportFrom(import) => {
                for alias in &import.names {
                    self.bound
                        .insert(alias.asname.as_ref().unwrap_or(&alias.name).to_string());
                }
            }
            Stmt::Global(global) => {
                self.globals
                    .extend(global.names.iter().map(|name| name.to_string()));
            }
            Stmt::Nonlocal(nonlocal) => {
                self.nonlocals
                    .extend(nonlocal.names.iter().map(|name| name.to_string()));
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_except_handler(&mut self, handler: &'a ExceptHandler) {
        let ExceptHandler::ExceptHandler(inner) = handler;
        if let Some(name) = &inner.name {
            self.bound.insert(name.to_string());
        }
        visitor::walk_except_handler(self, handler);
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        match pattern {
            Pattern::MatchAs(ast::PatternMatchAs {
                name: Some(name), ..
            })
            | Pattern::MatchStar(ast::PatternMatchStar {
                name: Some(name), ..
            }) => {
                self.bound.insert(name.to_string());
            }
            Pattern::MatchMapping(ast::PatternMatchMapping {
                rest: Some(rest), ..
            }) => {
                self.bound.insert(rest.to_string());
            }
            _ => {}
        }
        visitor::walk_pattern(self, pattern);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(name) if name.ctx != ExprContext::Load => {
                self.bound.insert(name.id.to_string());
            }
            Expr::Named(named) => {
                if let Expr::Name(name) = &*named.target {
                    self.bound.insert(name.id.to_string());
                }
                self.visit_expr(&named.value);
            }
            // Their own scopes: only a walrus inside a comprehension binds
            // here, so look for those and skip the comprehension targets.
            Expr::Lambda(_) => {}
            Expr::ListComp(ast::ExprListComp {
                elt, generators, ..
            })
            | Expr::SetComp(ast::ExprSetComp {
                elt, generators, ..
            })
            | Expr::Generator(ast::ExprGenerator {
                elt, generators, ..
            }) => {
                self.comprehension(generators);
                self.visit_expr(elt);
            }
            Expr::DictComp(comp) => {
                self.comprehension(&comp.generators);
                if let Some(key) = &comp.key {
                    self.visit_expr(key);
                }
                self.visit_expr(&comp.value);
            }
            _ => visitor::walk_expr(self, expr),
        }
    }
}

impl Locals {
    fn comprehension(&mut self, generators: &[ast::Comprehension]) {
        for generator in generators {
            self.visit_expr(&generator.iter);
            for condition in &generator.ifs {
                self.visit_expr(condition);
            }
        }
    }
}

#[cfg(test)]
#[path = "python_tests.rs"]
mod tests;
