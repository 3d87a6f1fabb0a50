//! The memory guard's arithmetic: where the kernel's memory limit comes from
//! and, reading by reading, whether the running cell must be interrupted.
//!
//! Pure on purpose: the thread that owns the sampler feeds it readings and
//! acts on its decisions (an interrupt through the proxy's own interrupt
//! path, one message in the cell's output), so every rule here is tested
//! without a kernel. The rules, and why:
//!
//! - The limit is the tightest of the kernel's memory cgroup and the
//!   machine, because the OOM killer acts on whichever is reached first.
//!   Both cgroup kinds are read: v1 (`N:memory:/path`, hybrid hosts, our own
//!   machines among them) and v2 (`0::/path`, `memory.max`), and every
//!   ancestor, since a child cgroup is bound by its parents' limits too.
//! - A cell is interrupted at most once, and only when its own growth carries
//!   the kernel past the limit: a kernel that crept up across many small
//!   cells (ipykernel keeps every printed line in its output history) would
//!   otherwise lose every next cell. Such a kernel gets a warning instead,
//!   once per crossing of the warning level, with the growth per cell that
//!   explains it.
//! - The guard never kills: when a cell ignores the interrupt, the caller
//!   logs it and does nothing more.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Share of the limit base that is the interrupt limit by default.
pub const DEFAULT_LIMIT_PERCENT: f64 = 90.0;
/// Share of the interrupt limit at which a starting cell is warned about.
pub const WARN_PERCENT: f64 = 75.0;
/// Cells whose growth the warning averages over.
const GROWTH_WINDOW: usize = 10;
/// cgroup v1 reports "no limit" as a page-rounded 2^63 - 1; anything this
/// large is no limit.
const NO_LIMIT: u64 = 1 << 62;

/// What `JUPYTER_LINEAGE_MEMORY_LIMIT` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitSetting {
    /// Unset: [`DEFAULT_LIMIT_PERCENT`] of the tightest limit.
    Default,
    /// `off`: no guard.
    Off,
    /// A size: `12G`, `400M`, `1.5GiB`, `1000000`.
    Bytes(u64),
    /// A percentage of the tightest limit: `80%`.
    Percent(f64),
}

/// A setting the guard cannot read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("JUPYTER_LINEAGE_MEMORY_LIMIT={value:?} is neither a size (12G, 400M), a percentage (80%) nor `off`")]
pub struct LimitSettingError {
    pub value: String,
}

impl LimitSetting {
    /// Reads the setting; an empty value is the default.
    pub fn parse(value: Option<&str>) -> Result<LimitSetting, LimitSettingError> {
        let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(LimitSetting::Default);
        };
        let bad = || LimitSettingError {
            value: raw.to_string(),
        };
        let lower = raw.to_ascii_lowercase();
        if matches!(lower.as_str(), "off" | "none" | "0" | "false" | "no") {
            return Ok(LimitSetting::Off);
        }
        if let Some(p) = lower.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return if p > 0.0 && p <= 100.0 {
                Ok(LimitSetting::Percent(p))
            } else {
                Err(bad())
            };
        }
        let split = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(lower.len());
        let (number, unit) = lower.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        // Memory sizes are binary, as `free -h` and cgroups count them.
        let scale: u64 = match unit.trim() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = number * scale as f64;
        if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
            return Err(bad());
        }
        Ok(LimitSetting::Bytes(bytes as u64))
    }
}

/// Where a limit was found, for the log, `doctor` and the user's message.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitOrigin {
    /// `memory.limit_in_bytes` of a v1 memory cgroup (or an ancestor).
    CgroupV1(PathBuf),
    /// `memory.max` of a v2 cgroup (or an ancestor).
    CgroupV2(PathBuf),
    /// The machine's memory.
    Machine,
    /// The byte size the user set.
    Setting,
}

/// The guard's limit and warning level, in bytes of the kernel tree's RSS.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryLimit {
    pub limit: u64,
    pub warn_at: u64,
    /// What the limit is a share of (the cgroup's or the machine's bytes).
    pub base: u64,
    pub origin: LimitOrigin,
}

/// The tightest memory cgroup limit of the process whose `/proc/<pid>/cgroup`
/// is `proc_cgroup`, with `read` reading a file under `cgroup_root`
/// (normally `/sys/fs/cgroup`). Walks from the process's cgroup up to the
/// root, as the kernel enforces every ancestor's limit.
pub fn cgroup_limit(
    proc_cgroup: &str,
    cgroup_root: &Path,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<(u64, LimitOrigin)> {
    let mut best: Option<(u64, LimitOrigin)> = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (dir, file, v2) = if id == "0" && controllers.is_empty() {
            (cgroup_root.to_path_buf(), "memory.max", true)
        } else if controllers.split(',').any(|c| c == "memory") {
            (cgroup_root.join("memory"), "memory.limit_in_bytes", false)
        } else {
            continue;
        };
        let mut rel = PathBuf::from(path.trim_start_matches('/'));
        loop {
            let file_path = dir.join(&rel).join(file);
            if let Some(bytes) = read(&file_path).and_then(|s| limit_value(&s)) {
                if best.as_ref().is_none_or(|(b, _)| bytes < *b) {
                    let origin = if v2 {
                        LimitOrigin::CgroupV2(file_path)
                    } else {
                        LimitOrigin::CgroupV1(file_path)
                    };
                    best = Some((bytes, origin));
                }
            }
            if !rel.pop() {
                break;
            }
        }
    }
    best
}

/// A cgroup limit file's value; `max` and v1's near-2^63 mean none.
fn limit_value(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v > 0 && v < NO_LIMIT).then_some(v)
}

/// The guard's limit from the setting, the cgroup limit (if any) and the
/// machine's memory; `None` when the guard is off.
pub fn resolve(
    setting: LimitSetting,
    cgroup: Option<(u64, LimitOrigin)>,
    machine: u64,
) -> Option<MemoryLimit> {
    let (base, origin) = match cgroup {
        Some((bytes, origin)) if bytes < machine => (bytes, origin),
        _ => (machine, LimitOrigin::Machine),
    };
    let share = |p: f64| (base as f64 * p / 100.0) as u64;
    let (limit, origin) = match setting {
        LimitSetting::Off => return None,
        LimitSetting::Default => (share(DEFAULT_LIMIT_PERCENT), origin),
        LimitSetting::Percent(p) => (share(p), origin),
        LimitSetting::Bytes(b) => (b, LimitOrigin::Setting),
    };
    (limit > 0).then(|| MemoryLimit {
        limit,
        warn_at: (limit as f64 * WARN_PERCENT / 100.0) as u64,
        base,
        origin,
    })
}

/// What the caller must do after a reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Interrupt the running cell: its own growth took the kernel tree to
    /// `rss` bytes, past the limit.
    Interrupt { rss: u64, limit: u64 },
    /// The cell starts with the kernel above the warning level: tell the user
    /// once, with the mean growth per cell over the last cells.
    Warn {
        rss: u64,
        limit: u64,
        growth_per_cell: Option<i64>,
        cells: usize,
    },
}

/// The guard's state across the cells of one kernel.
#[derive(Debug)]
pub struct Guard {
    limit: MemoryLimit,
    /// The running cell's opening RSS and whether it was interrupted already.
    cell: Option<(u64, bool)>,
    /// Set once a warning was given; cleared when the kernel drops back
    /// below the warning level, so each crossing warns once.
    warned: bool,
    /// RSS growth of the last finished cells, newest last.
    growth: VecDeque<i64>,
}

impl Guard {
    pub fn new(limit: MemoryLimit) -> Guard {
        Guard {
            limit,
            cell: None,
            warned: false,
            growth: VecDeque::with_capacity(GROWTH_WINDOW),
        }
    }

    pub fn limit(&self) -> &MemoryLimit {
        &self.limit
    }

    /// A cell starts with the kernel tree at `rss` bytes.
    pub fn cell_started(&mut self, rss: u64) -> Option<Decision> {
        self.cell = Some((rss, false));
        if rss < self.limit.warn_at {
            self.warned = false;
            return None;
        }
        if self.warned {
            return None;
        }
        self.warned = true;
        let cells = self.growth.len();
        Some(Decision::Warn {
            rss,
            limit: self.limit.limit,
            growth_per_cell: (cells > 0).then(|| self.growth.iter().sum::<i64>() / cells as i64),
            cells,
        })
    }

    /// A reading of the kernel tree while the cell runs.
    pub fn reading(&mut self, rss: u64) -> Option<Decision> {
        let (start, fired) = self.cell.as_mut()?;
        if *fired || rss < self.limit.limit || *start >= self.limit.limit {
            return None;
        }
        *fired = true;
        Some(Decision::Interrupt {
            rss,
            limit: self.limit.limit,
        })
    }

    /// The cell ended with the kernel tree at `rss` bytes.
    pub fn cell_finished(&mut self, rss: u64) {
        if let Some((start, _)) = self.cell.take() {
            if self.growth.len() == GROWTH_WINDOW {
                self.growth.pop_front();
            }
            self.growth.push_back(rss as i64 - start as i64);
        }
        if rss < self.limit.warn_at {
            self.warned = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn reads_sizes_percentages_and_off() {
        assert_eq!(LimitSetting::parse(None), Ok(LimitSetting::Default));
        assert_eq!(LimitSetting::parse(Some(" ")), Ok(LimitSetting::Default));
        assert_eq!(LimitSetting::parse(Some("off")), Ok(LimitSetting::Off));
        assert_eq!(LimitSetting::parse(Some("OFF")), Ok(LimitSetting::Off));
        assert_eq!(
            LimitSetting::parse(Some("400M")),
            Ok(LimitSetting::Bytes(400 * MIB))
        );
        assert_eq!(
            LimitSetting::parse(Some("12G")),
            Ok(LimitSetting::Bytes(12 * GIB))
        );
        assert_eq!(
            LimitSetting::parse(Some("1.5GiB")),
            Ok(LimitSetting::Bytes(3 * GIB / 2))
        );
        assert_eq!(
            LimitSetting::parse(Some("1000000")),
            Ok(LimitSetting::Bytes(1_000_000))
        );
        assert_eq!(
            LimitSetting::parse(Some("80%")),
            Ok(LimitSetting::Percent(80.0))
        );
        for bad in ["12X", "abc", "150%", "-5%", "G", "1.2.3G"] {
            assert!(LimitSetting::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> = entries
            .iter()
            .map(|(p, v)| (PathBuf::from(p), v.to_string()))
            .collect();
        move |p: &Path| map.get(p).cloned()
    }

    #[test]
    fn finds_a_v1_limit_on_a_hybrid_host() {
        let proc = "9:name=systemd:/\n4:memory:/jobs/k1\n0::/\n";
        let read = files(&[
            ("/cg/memory/jobs/k1/memory.limit_in_bytes", "629145600\n"),
            (
                "/cg/memory/jobs/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("/cg/memory/memory.limit_in_bytes", "9223372036854771712\n"),
            // The unified mount has no memory controller here.
        ]);
        let (bytes, origin) = cgroup_limit(proc, Path::new("/cg"), read).expect("limit");
        assert_eq!(bytes, 600 * MIB);
        assert_eq!(
            origin,
            LimitOrigin::CgroupV1(PathBuf::from("/cg/memory/jobs/k1/memory.limit_in_bytes"))
        );
    }

    #[test]
    fn takes_the_tightest_ancestor_on_v2() {
        let proc = "0::/user.slice/session-1.scope\n";
        let read = files(&[
            ("/cg/user.slice/session-1.scope/memory.max", "max\n"),
            ("/cg/user.slice/memory.max", "2147483648\n"),
        ]);
        let (bytes, origin) = cgroup_limit(proc, Path::new("/cg"), read).expect("limit");
        assert_eq!(bytes, 2 * GIB);
        assert_eq!(
            origin,
            LimitOrigin::CgroupV2(PathBuf::from("/cg/user.slice/memory.max"))
        );
    }

    #[test]
    fn no_limit_anywhere_is_none() {
        let proc = "4:memory:/\n0::/\n";
        let read = files(&[
            ("/cg/memory/memory.limit_in_bytes", "9223372036854771712"),
            ("/cg/memory.max", "max"),
        ]);
        assert_eq!(cgroup_limit(proc, Path::new("/cg"), read), None);
        assert_eq!(cgroup_limit("", Path::new("/cg"), files(&[])), None);
    }

    #[test]
    fn the_limit_is_a_share_of_the_tightest_bound() {
        let cg = Some((
            600 * MIB,
            LimitOrigin::CgroupV1(PathBuf::from("/x/memory.limit_in_bytes")),
        ));
        let l = resolve(LimitSetting::Default, cg.clone(), 24 * GIB).expect("on");
        assert_eq!(l.base, 600 * MIB);
        assert_eq!(l.limit, 540 * MIB);
        assert_eq!(l.warn_at, 405 * MIB);
        assert!(matches!(l.origin, LimitOrigin::CgroupV1(_)));
        // A cgroup looser than the machine: the machine is the bound.
        let loose = Some((64 * GIB, LimitOrigin::CgroupV2(PathBuf::from("/m"))));
        let l = resolve(LimitSetting::Percent(50.0), loose, 24 * GIB).expect("on");
        assert_eq!((l.limit, l.origin), (12 * GIB, LimitOrigin::Machine));
        let l = resolve(LimitSetting::Bytes(400 * MIB), cg.clone(), 24 * GIB).expect("on");
        assert_eq!((l.limit, l.origin), (400 * MIB, LimitOrigin::Setting));
        assert_eq!(resolve(LimitSetting::Off, cg, 24 * GIB), None);
    }

    fn guard() -> Guard {
        Guard::new(resolve(LimitSetting::Bytes(400 * MIB), None, 24 * GIB).expect("on"))
    }

    #[test]
    fn a_growing_cell_is_interrupted_once() {
        let mut g = guard();
        assert_eq!(g.cell_started(50 * MIB), None);
        assert_eq!(g.reading(200 * MIB), None);
        assert_eq!(
            g.reading(410 * MIB),
            Some(Decision::Interrupt {
                rss: 410 * MIB,
                limit: 400 * MIB
            })
        );
        // It ignored the interrupt: nothing more, never a kill.
        assert_eq!(g.reading(500 * MIB), None);
        g.cell_finished(60 * MIB);
        // The next cell is watched afresh.
        assert_eq!(g.cell_started(60 * MIB), None);
        assert!(matches!(
            g.reading(401 * MIB),
            Some(Decision::Interrupt { .. })
        ));
    }

    #[test]
    fn a_kernel_that_crept_up_is_warned_not_interrupted() {
        let mut g = guard();
        // Ten small cells, 10 MiB each, up to 300 MiB (75 % of 400 MiB).
        let mut rss = 200 * MIB;
        for _ in 0..10 {
            assert_eq!(g.cell_started(rss), None);
            rss += 10 * MIB;
            g.cell_finished(rss);
        }
        assert_eq!(
            g.cell_started(rss),
            Some(Decision::Warn {
                rss: 300 * MIB,
                limit: 400 * MIB,
                growth_per_cell: Some(10 * MIB as i64),
                cells: 10
            })
        );
        g.cell_finished(rss);
        // Once per crossing.
        assert_eq!(g.cell_started(rss), None);
        g.cell_finished(rss);
        // Back below the warning level, then above again: a new warning.
        assert_eq!(g.cell_started(100 * MIB), None);
        g.cell_finished(100 * MIB);
        assert!(matches!(
            g.cell_started(350 * MIB),
            Some(Decision::Warn { .. })
        ));
        // Its own growth past the limit still interrupts it.
        assert!(matches!(
            g.reading(420 * MIB),
            Some(Decision::Interrupt { .. })
        ));
    }

    #[test]
    fn a_cell_that_starts_past_the_limit_is_left_alone() {
        let mut g = guard();
        assert!(matches!(
            g.cell_started(450 * MIB),
            Some(Decision::Warn { .. })
        ));
        assert_eq!(g.reading(500 * MIB), None);
    }

    #[test]
    fn readings_outside_a_cell_do_nothing() {
        let mut g = guard();
        assert_eq!(g.reading(900 * MIB), None);
    }
}
