//! Scheduling strategies as the user posts them (the seed's model plus
//! `command_regex`), their validation, their resolution to the `pid -> strategy`
//! set the scheduler applies, and their persistence.
//!
//! Targets (a strategy needs at least one):
//! - `pid`: that process (the BPF side covers all its threads through the tgid
//!   lookup) while it exists; it cannot be combined with the other targets;
//! - `command_regex`: every process whose command (`comm`, at most 15 bytes)
//!   matches (unanchored; write `^...$` for a whole-name match);
//! - `selectors`: every process in a pod whose labels match all selectors
//!   (exact key=value, AND);
//! - `command_regex` + `selectors`: processes in matching pods whose command
//!   also matches.
//!
//! Precedence when several strategies match one PID: the most specific kind
//! wins, `pid` > `command_regex` (with or without selectors) > `selectors` only;
//! among strategies of the same kind, the first one in the posted list wins.
//! PID 1, kernel threads and scx_pilot itself are never targeted.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cli::{MAX_SLICE_NS, MIN_SLICE_NS};
use crate::podmeta::PodDirectory;
use crate::pods::{ProcInfo, ProcSnapshot};
use crate::sched::{DesiredStrategies, PidStrategy};

/// Most strategies one request may carry.
pub const MAX_STRATEGIES: usize = 256;
/// Most label selectors one strategy may carry.
pub const MAX_SELECTORS: usize = 16;
/// Longest label key (Kubernetes: 253-byte prefix, '/', 63-byte name).
pub const MAX_LABEL_KEY_LEN: usize = 317;
/// Longest label value (Kubernetes).
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// Longest `command_regex`, in bytes.
pub const MAX_REGEX_LEN: usize = 256;
/// Most memory one compiled `command_regex` may take.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A pod label that must match exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    /// Label key to match.
    #[schema(example = "nf")]
    pub key: String,
    /// Expected value of the label.
    #[schema(example = "upf")]
    pub value: String,
}

/// One strategy as posted (the seed's SchedulingStrategy plus
/// `command_regex`). It targets one `pid`, or the processes whose command
/// matches `command_regex` and/or that run in pods whose labels match every
/// selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// Whether tasks under this strategy are dispatched ahead of normal tasks
    /// (and may preempt them). Defaults to false.
    #[serde(default)]
    pub priority: bool,
    /// Time slice in nanoseconds, within 50000..=1000000000.
    #[schema(minimum = 50000, maximum = 1000000000, example = 20000000)]
    pub execution_time: u64,
    /// A specific PID (a process: all its threads are covered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 2, example = 717720)]
    pub pid: Option<u32>,
    /// Pod label selectors, all of which must match (AND).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Vec<LabelSelector>>,
    /// A regular expression (Rust `regex` syntax, unanchored) matched against
    /// each process's command name (`comm`, at most 15 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "^upf")]
    pub command_regex: Option<String>,
}

impl Strategy {
    /// The precedence class: 3 for `pid`, 2 for `command_regex`, 1 for selectors only.
    pub fn specificity(&self) -> u8 {
        if self.pid.is_some() {
            3
        } else if self.command_regex.is_some() {
            2
        } else {
            1
        }
    }

    fn pid_strategy(&self) -> PidStrategy {
        PidStrategy {
            slice_ns: self.execution_time,
            priority: self.priority,
        }
    }
}

/// The body of `POST /api/v1/scheduling/strategies`: the whole new set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    pub strategies: Vec<Strategy>,
}

/// One resolved entry in the seed's GET shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResolvedStrategy {
    pub priority: bool,
    pub execution_time: u64,
    pub pid: u32,
}

/// Why a request was refused: the strategy index, the field and what is wrong.
/// An empty `field` means the strategy as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strategies[{}]", self.index)?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ValidationError {}

/// What validation needs to know about the host.
pub struct ValidationContext<'a> {
    /// scx_pilot's own PID: it must never carry a strategy.
    pub agent_pid: u32,
    /// Where /proc is (used to refuse kernel threads).
    pub proc_root: &'a Path,
    /// Check the processes the PIDs name now: they must exist and be neither
    /// kernel threads nor scx_pilot (a POST). A saved set is loaded without:
    /// its processes may be gone and their PIDs reused, and the rest of the set
    /// must not be lost for that (resolution skips such PIDs).
    pub check_processes: bool,
}

fn err(index: usize, field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        index,
        field: field.into(),
        message: message.into(),
    }
}

fn compile_regex(re: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Check every strategy of a request; the first problem found is returned and
/// nothing is to be changed.
pub fn validate(req: &StrategyRequest, ctx: &ValidationContext) -> Result<(), ValidationError> {
    if req.strategies.len() > MAX_STRATEGIES {
        return Err(err(
            MAX_STRATEGIES,
            "",
            format!(
                "too many strategies ({}); at most {MAX_STRATEGIES}",
                req.strategies.len()
            ),
        ));
    }
    for (i, s) in req.strategies.iter().enumerate() {
        if !(MIN_SLICE_NS..=MAX_SLICE_NS).contains(&s.execution_time) {
            return Err(err(
                i,
                "execution_time",
                format!(
                    "{} ns is out of range {MIN_SLICE_NS}..={MAX_SLICE_NS} ns",
                    s.execution_time
                ),
            ));
        }
        match (s.pid, &s.selectors, &s.command_regex) {
            (None, None, None) => {
                return Err(err(
                    i,
                    "pid",
                    "a strategy must target something: give a pid, selectors or a command_regex",
                ))
            }
            (Some(_), Some(_), _) => {
                return Err(err(
                    i,
                    "selectors",
                    "give either a pid or selectors, not both",
                ))
            }
            (Some(_), _, Some(_)) => {
                return Err(err(
                    i,
                    "command_regex",
                    "give either a pid or a command_regex, not both",
                ))
            }
            _ => {}
        }
        if let Some(pid) = s.pid {
            if pid <= 1 {
                return Err(err(i, "pid", format!("PID {pid} cannot carry a strategy")));
            }
            if ctx.check_processes {
                if pid == ctx.agent_pid {
                    return Err(err(
                        i,
                        "pid",
                        format!("PID {pid} is scx_pilot itself and cannot carry a strategy"),
                    ));
                }
                if !ctx.proc_root.join(pid.to_string()).exists() {
                    return Err(err(i, "pid", format!("no process with PID {pid}")));
                }
                if crate::pods::is_kernel_thread(ctx.proc_root, pid) {
                    return Err(err(
                        i,
                        "pid",
                        format!("PID {pid} is a kernel thread and cannot carry a strategy"),
                    ));
                }
            }
        }
        if let Some(re) = &s.command_regex {
            if re.is_empty() || re.len() > MAX_REGEX_LEN {
                return Err(err(
                    i,
                    "command_regex",
                    format!("must be 1..={MAX_REGEX_LEN} bytes long"),
                ));
            }
            if let Err(e) = compile_regex(re) {
                // The regex error spans several lines; keep the message on one.
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(err(
                    i,
                    "command_regex",
                    format!("is not a valid regular expression: {msg}"),
                ));
            }
        }
        if let Some(selectors) = &s.selectors {
            if selectors.is_empty() {
                return Err(err(i, "selectors", "must hold at least one selector"));
            }
            if selectors.len() > MAX_SELECTORS {
                return Err(err(
                    i,
                    "selectors",
                    format!(
                        "too many selectors ({}); at most {MAX_SELECTORS}",
                        selectors.len()
                    ),
                ));
            }
            for (j, sel) in selectors.iter().enumerate() {
                if sel.key.is_empty() || sel.key.len() > MAX_LABEL_KEY_LEN {
                    return Err(err(
                        i,
                        format!("selectors[{j}].key"),
                        format!("must be 1..={MAX_LABEL_KEY_LEN} bytes long"),
                    ));
                }
                if sel.value.len() > MAX_LABEL_VALUE_LEN {
                    return Err(err(
                        i,
                        format!("selectors[{j}].value"),
                        format!("must be at most {MAX_LABEL_VALUE_LEN} bytes long"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// How one stored strategy resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StrategyResolution {
    /// PIDs this strategy covers now (sorted).
    pub pids: Vec<u32>,
    /// Why it covers nothing (or less than it matches), when that is the case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of resolving a whole set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// What the scheduler is to apply.
    pub desired: DesiredStrategies,
    /// The same set in the seed's GET shape, sorted by PID.
    pub list: Vec<ResolvedStrategy>,
    /// One entry per stored strategy, in posted order.
    pub per_strategy: Vec<StrategyResolution>,
}

/// A validated set with its regexes compiled once.
#[derive(Debug, Clone, Default)]
pub struct StrategySet {
    pub strategies: Vec<Strategy>,
    regexes: Vec<Option<Regex>>,
    /// Start time (clock ticks after boot) of the process each `pid` strategy
    /// was accepted for: a later process that reuses the PID does not match.
    /// A PID without an entry matches whatever process has it (sets from
    /// before start times were recorded, or proc roots without them).
    pub pid_start_ticks: HashMap<u32, u64>,
}

impl From<Vec<Strategy>> for StrategySet {
    fn from(strategies: Vec<Strategy>) -> Self {
        Self::new(strategies)
    }
}

/// A start time no process has: the recorded one is from an earlier boot.
const EARLIER_BOOT: u64 = u64::MAX;

impl StrategySet {
    /// Compile the set's regexes; strategies whose regex does not compile
    /// (only possible for sets that skipped validation) match nothing.
    pub fn new(strategies: Vec<Strategy>) -> Self {
        let regexes = strategies
            .iter()
            .map(|s| {
                s.command_regex
                    .as_deref()
                    .and_then(|r| compile_regex(r).ok())
            })
            .collect();
        Self {
            strategies,
            regexes,
            pid_start_ticks: HashMap::new(),
        }
    }

    /// The set, each `pid` strategy tied to the process that has the PID now.
    pub fn pinned(strategies: Vec<Strategy>, proc_root: &Path) -> Self {
        let mut set = Self::new(strategies);
        set.pid_start_ticks = set
            .strategies
            .iter()
            .filter_map(|s| s.pid)
            .filter_map(|pid| Some((pid, crate::pods::start_ticks(proc_root, pid)?)))
            .collect();
        set
    }

    /// The set with start times as saved (see [`StateStore::load`]).
    pub fn with_start_ticks(strategies: Vec<Strategy>, ticks: HashMap<u32, u64>) -> Self {
        let mut set = Self::new(strategies);
        set.pid_start_ticks = ticks;
        set
    }

    /// Whether resolving needs a process scan (regexes or selectors).
    pub fn needs_scan(&self) -> bool {
        self.strategies.iter().any(|s| s.pid.is_none())
    }

    /// Whether any strategy uses label selectors.
    pub fn uses_selectors(&self) -> bool {
        self.strategies.iter().any(|s| s.selectors.is_some())
    }
}

/// What resolution looks at.
pub struct ResolveInput<'a> {
    /// For `pid` strategies: the process must exist under it now.
    pub proc_root: &'a Path,
    /// Every process, for `command_regex` and `selectors` (None: not scanned).
    pub snapshot: Option<&'a ProcSnapshot>,
    /// Pod metadata (labels), for `selectors` (None: not available).
    pub pods: Option<&'a PodDirectory>,
    /// Never targeted.
    pub agent_pid: u32,
}

fn labels_match(
    selectors: &[LabelSelector],
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    selectors
        .iter()
        .all(|sel| labels.get(&sel.key) == Some(&sel.value))
}

/// The processes a strategy may cover, and those of them in pods by pod UID,
/// built once per resolution.
struct ProcessIndex<'a> {
    eligible: Vec<&'a ProcInfo>,
    by_pod: HashMap<&'a str, Vec<&'a ProcInfo>>,
}

impl<'a> ProcessIndex<'a> {
    fn new(snapshot: &'a ProcSnapshot, agent_pid: u32) -> Self {
        let eligible: Vec<&ProcInfo> = snapshot
            .processes
            .iter()
            .filter(|p| !p.kernel_thread && p.pid > 1 && p.pid != agent_pid)
            .collect();
        let mut by_pod: HashMap<&str, Vec<&ProcInfo>> = HashMap::new();
        for p in &eligible {
            if let Some(pod) = &p.pod {
                by_pod.entry(pod.pod_uid.as_str()).or_default().push(p);
            }
        }
        Self { eligible, by_pod }
    }
}

/// Resolve a set to live PIDs: see the module documentation for the rules.
pub fn resolve(set: &StrategySet, input: &ResolveInput) -> Resolved {
    let n = set.strategies.len();
    // Candidate PIDs per strategy, then assignment in precedence order.
    let mut candidates: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut notes: Vec<Option<String>> = vec![None; n];
    let mut index: Option<ProcessIndex> = None;
    for (i, s) in set.strategies.iter().enumerate() {
        if let Some(pid) = s.pid {
            if !input.proc_root.join(pid.to_string()).exists() {
                notes[i] = Some(format!("no process with PID {pid}"));
                continue;
            }
            // One read of /proc/PID/stat for both checks.
            let id = crate::pods::identity(input.proc_root, pid);
            if pid == input.agent_pid || id.is_some_and(|id| id.kernel_thread) {
                notes[i] = Some(format!(
                    "PID {pid} is now scx_pilot or a kernel thread, which never carry a strategy"
                ));
            } else if set.pid_start_ticks.get(&pid).is_some_and(|&want| {
                id.and_then(|id| id.start_ticks)
                    .is_some_and(|now| now != want)
            }) {
                notes[i] = Some(format!(
                    "PID {pid} now belongs to another process (the one the strategy was posted for exited)"
                ));
            } else {
                candidates[i].push(pid);
            }
            continue;
        }
        let Some(snapshot) = input.snapshot else {
            notes[i] = Some("processes have not been scanned yet".into());
            continue;
        };
        if s.command_regex.is_some() && set.regexes[i].is_none() {
            notes[i] = Some("command_regex does not compile".into());
            continue;
        }
        if s.selectors.is_some() && input.pods.is_none() {
            notes[i] = Some(
                "label selectors match no PID: pod labels are not available \
                 (no Kubernetes API and no --pods-file)"
                    .into(),
            );
            continue;
        }
        let re = set.regexes[i].as_ref();
        let selectors = s.selectors.as_deref();
        let index = index.get_or_insert_with(|| ProcessIndex::new(snapshot, input.agent_pid));
        // Commands repeat (many workers, one name): each is matched once.
        let mut command_match: HashMap<String, bool> = HashMap::new();
        let mut command_ok = |command: &str| match re {
            None => true,
            Some(re) => match command_match.get(command) {
                Some(&ok) => ok,
                None => {
                    let ok = re.is_match(command);
                    command_match.insert(command.to_owned(), ok);
                    ok
                }
            },
        };
        match selectors {
            // Only processes of pods whose labels match: one label check per pod.
            Some(sel) => {
                for (uid, procs) in &index.by_pod {
                    let labelled = input
                        .pods
                        .and_then(|d| d.get(uid))
                        .is_some_and(|m| labels_match(sel, &m.labels));
                    if labelled {
                        candidates[i].extend(
                            procs
                                .iter()
                                .filter(|p| command_ok(&p.command))
                                .map(|p| p.pid),
                        );
                    }
                }
            }
            None => candidates[i].extend(
                index
                    .eligible
                    .iter()
                    .filter(|p| command_ok(&p.command))
                    .map(|p| p.pid),
            ),
        }
        if candidates[i].is_empty() {
            notes[i] = Some(
                match (re.is_some(), selectors.is_some()) {
                    (true, true) => {
                        "no process in a pod with matching labels has a matching command"
                    }
                    (true, false) => "no process has a matching command",
                    _ => "no process runs in a pod with matching labels",
                }
                .into(),
            );
        }
    }

    let mut order: Vec<usize> = (0..n).collect();
    // Stable: among equals, posted order is kept (first wins).
    order.sort_by_key(|&i| std::cmp::Reverse(set.strategies[i].specificity()));
    let mut desired: HashMap<u32, PidStrategy> = HashMap::new();
    let mut won: Vec<Vec<u32>> = vec![Vec::new(); n];
    for &i in &order {
        let value = set.strategies[i].pid_strategy();
        let mut shadowed = 0usize;
        for &pid in &candidates[i] {
            match desired.entry(pid) {
                Entry::Occupied(_) => shadowed += 1,
                Entry::Vacant(slot) => {
                    slot.insert(value);
                    won[i].push(pid);
                }
            }
        }
        if shadowed > 0 {
            notes[i] = Some(if set.strategies[i].pid.is_some() {
                format!(
                    "PID {} is already covered by an earlier strategy",
                    candidates[i][0]
                )
            } else {
                format!(
                    "{shadowed} matching PIDs are covered by a more specific or earlier strategy"
                )
            });
        }
    }
    let per_strategy = won
        .into_iter()
        .zip(notes)
        .map(|(mut pids, note)| {
            pids.sort_unstable();
            StrategyResolution { pids, note }
        })
        .collect();
    let mut list: Vec<ResolvedStrategy> = desired
        .iter()
        .map(|(&pid, s)| ResolvedStrategy {
            priority: s.priority,
            execution_time: s.slice_ns,
            pid,
        })
        .collect();
    list.sort_by_key(|r| r.pid);
    Resolved {
        desired,
        list,
        per_strategy,
    }
}

/// The accepted strategy set and what it resolved to.
#[derive(Debug, Clone)]
pub struct StrategyState {
    pub strategies: Vec<Strategy>,
    pub set: StrategySet,
    pub resolved: Resolved,
    /// When the set was last replaced (or loaded).
    pub updated_at: DateTime<Utc>,
    /// When it was last resolved.
    pub resolved_at: DateTime<Utc>,
    /// Bumped on every replacement, so a resolution computed from an older set
    /// is never stored over a newer one.
    pub generation: u64,
}

impl StrategyState {
    /// A set resolved against `proc_root` (a fresh scan when it needs one), without pod labels.
    pub fn new(set: impl Into<StrategySet>, proc_root: &Path) -> Self {
        let set = set.into();
        let snapshot = if set.needs_scan() {
            crate::pods::scan_all(proc_root).ok()
        } else {
            None
        };
        let resolved = resolve(
            &set,
            &ResolveInput {
                proc_root,
                snapshot: snapshot.as_ref(),
                pods: None,
                agent_pid: std::process::id(),
            },
        );
        Self::with_resolved(set, resolved, 0)
    }

    pub fn with_resolved(set: StrategySet, resolved: Resolved, generation: u64) -> Self {
        let now = Utc::now();
        Self {
            strategies: set.strategies.clone(),
            set,
            resolved,
            updated_at: now,
            resolved_at: now,
            generation,
        }
    }
}

/// Strategies from `--strategy PID:SLICE_NS[:prio]` flags, in the posted model.
pub fn from_static(desired: &DesiredStrategies) -> Vec<Strategy> {
    let mut pids: Vec<_> = desired.iter().collect();
    pids.sort_by_key(|(pid, _)| **pid);
    pids.into_iter()
        .map(|(&pid, s)| Strategy {
            priority: s.priority,
            execution_time: s.slice_ns,
            pid: Some(pid),
            selectors: None,
            command_regex: None,
        })
        .collect()
}

/// The file under the state directory that holds the accepted set.
pub const STATE_FILE: &str = "strategies.json";

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    saved_at: DateTime<Utc>,
    strategies: Vec<Strategy>,
    /// The boot the start times below belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    /// PID -> start time of the process each `pid` strategy was accepted for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pid_start_ticks: BTreeMap<u32, u64>,
}

/// A set as loaded from the state file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Saved {
    pub strategies: Vec<Strategy>,
    /// As saved when the file is from this boot; after a reboot every saved
    /// PID names a process that is gone, so none of them matches.
    pub pid_start_ticks: HashMap<u32, u64>,
}

impl Saved {
    pub fn into_set(self) -> StrategySet {
        StrategySet::with_start_ticks(self.strategies, self.pid_start_ticks)
    }
}

/// Where the accepted set is kept across restarts.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    boot_id: Option<String>,
}

impl StateStore {
    /// A store in `dir`, created (mode 0700) when missing.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = dir.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Self {
            dir,
            boot_id: crate::pods::boot_id(Path::new("/proc")),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved set, None when nothing was saved yet.
    pub fn load(&self) -> anyhow::Result<Option<Saved>> {
        use anyhow::Context;
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: StateFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            file.version == 1,
            "{}: unknown version {}",
            path.display(),
            file.version
        );
        let same_boot = file.boot_id.is_some() && file.boot_id == self.boot_id;
        let pid_start_ticks = file
            .strategies
            .iter()
            .filter_map(|s| s.pid)
            .filter_map(|pid| {
                let saved = file.pid_start_ticks.get(&pid).copied();
                match (same_boot, saved) {
                    (true, saved) => Some((pid, saved?)),
                    // Saved before start times were kept: trust the PID only
                    // within the boot, and there is no telling which boot.
                    (false, None) if file.boot_id.is_none() => None,
                    (false, _) => Some((pid, EARLIER_BOOT)),
                }
            })
            .collect();
        Ok(Some(Saved {
            strategies: file.strategies,
            pid_start_ticks,
        }))
    }

    /// Write the set atomically: a temporary file in the same directory,
    /// fsync, rename over the old file, fsync the directory. A crash at any
    /// point leaves either the old or the new set, never a torn file.
    pub fn save(&self, set: &StrategySet) -> std::io::Result<()> {
        let body = serde_json::to_vec_pretty(&StateFile {
            version: 1,
            saved_at: Utc::now(),
            strategies: set.strategies.clone(),
            boot_id: self.boot_id.clone(),
            pid_start_ticks: set.pid_start_ticks.iter().map(|(&p, &t)| (p, t)).collect(),
        })
        .map_err(std::io::Error::other)?;
        let tmp = self
            .dir
            .join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, self.path())?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ValidationContext<'static> {
        ValidationContext {
            agent_pid: 4242,
            proc_root: Path::new("/proc"),
            check_processes: true,
        }
    }

    fn pid_strategy(pid: u32, ns: u64) -> Strategy {
        Strategy {
            priority: false,
            execution_time: ns,
            pid: Some(pid),
            selectors: None,
            command_regex: None,
        }
    }

    #[test]
    fn validation_names_index_and_field() {
        let req = StrategyRequest {
            strategies: vec![
                pid_strategy(std::process::id(), 1_000_000),
                pid_strategy(std::process::id(), 10),
            ],
        };
        let e = validate(&req, &ctx()).unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(e.field, "execution_time");
        assert_eq!(
            e.to_string(),
            "strategies[1].execution_time: 10 ns is out of range 50000..=1000000000 ns"
        );
    }

    #[test]
    fn validation_bounds_are_inclusive() {
        for ns in [MIN_SLICE_NS, MAX_SLICE_NS] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(std::process::id(), ns)],
            };
            assert!(validate(&req, &ctx()).is_ok());
        }
        for ns in [MIN_SLICE_NS - 1, MAX_SLICE_NS + 1] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(std::process::id(), ns)],
            };
            assert!(validate(&req, &ctx()).is_err());
        }
    }

    #[test]
    fn refuses_pids_without_a_process_only_when_checking() {
        let req = StrategyRequest {
            strategies: vec![pid_strategy(u32::MAX - 1, 1_000_000)],
        };
        let e = validate(&req, &ctx()).unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (0, "pid"));
        assert!(e.message.contains("no process with PID"), "{e}");
        let saved = ValidationContext {
            check_processes: false,
            ..ctx()
        };
        assert!(validate(&req, &saved).is_ok());
    }

    #[test]
    fn refuses_special_pids() {
        for pid in [0, 1, 4242] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(pid, 1_000_000)],
            };
            let e = validate(&req, &ctx()).unwrap_err();
            assert_eq!((e.index, e.field.as_str()), (0, "pid"), "{pid}");
        }
        // kthreadd is PID 2 on Linux and a kernel thread.
        if crate::pods::is_kernel_thread(Path::new("/proc"), 2) {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(2, 1_000_000)],
            };
            assert!(validate(&req, &ctx())
                .unwrap_err()
                .message
                .contains("kernel thread"));
        }
    }

    #[test]
    fn refuses_empty_and_double_targets() {
        let mut s = pid_strategy(1000, 1_000_000);
        s.pid = None;
        let e = validate(
            &StrategyRequest {
                strategies: vec![s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("must target something"));
        s.selectors = Some(vec![]);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(e.field, "selectors");
        s.pid = Some(1000);
        s.selectors = Some(vec![LabelSelector {
            key: "a".into(),
            value: "b".into(),
        }]);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("not both"));
    }

    #[test]
    fn resolves_live_pids_first_wins() {
        // A child: the test process itself counts as the agent.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = child.id();
        let mut second = pid_strategy(me, 2_000_000);
        second.priority = true;
        let sel = Strategy {
            priority: true,
            execution_time: 1_000_000,
            pid: None,
            selectors: Some(vec![LabelSelector {
                key: "nf".into(),
                value: "upf".into(),
            }]),
            command_regex: None,
        };
        let strategies = vec![
            pid_strategy(me, 1_000_000),
            second,
            pid_strategy(u32::MAX - 1, 1_000_000),
            sel,
        ];
        let r = StrategyState::new(strategies, Path::new("/proc")).resolved;
        assert_eq!(r.desired.len(), 1);
        assert_eq!(
            r.desired[&me],
            PidStrategy {
                slice_ns: 1_000_000,
                priority: false
            }
        );
        assert_eq!(
            r.list,
            vec![ResolvedStrategy {
                priority: false,
                execution_time: 1_000_000,
                pid: me
            }]
        );
        assert_eq!(r.per_strategy[0].pids, vec![me]);
        assert!(r.per_strategy[1].note.as_ref().unwrap().contains("earlier"));
        assert!(r.per_strategy[2]
            .note
            .as_ref()
            .unwrap()
            .contains("no process"));
        assert!(r.per_strategy[3].note.as_ref().unwrap().contains("labels"));
        let _ = child.kill();
        let _ = child.wait();
    }

    fn snapshot(procs: &[(u32, &str, Option<&str>)]) -> ProcSnapshot {
        let mut s = ProcSnapshot::empty();
        s.processes = procs
            .iter()
            .map(|&(pid, command, pod)| crate::pods::ProcInfo {
                pid,
                ppid: 1,
                command: command.into(),
                kernel_thread: command.starts_with("kworker"),
                pod: pod.map(|uid| crate::pods::PodRef {
                    pod_uid: uid.into(),
                    container_id: String::new(),
                }),
            })
            .collect();
        s
    }

    fn sel(k: &str, v: &str) -> Option<Vec<LabelSelector>> {
        Some(vec![LabelSelector {
            key: k.into(),
            value: v.into(),
        }])
    }

    #[test]
    fn precedence_pid_then_regex_then_selectors_first_wins_among_equals() {
        let me = std::process::id();
        // `me` is a live PID (pid strategies need /proc/PID); the others are fake.
        let snap = snapshot(&[
            (me, "upf", Some("pod-a")),
            (1001, "upf", Some("pod-a")),
            (1002, "sidecar", Some("pod-a")),
            (1003, "upf", None),
            (1004, "kworker/0:1", None),
            (1, "upf", None),
        ]);
        let dir = crate::podmeta::PodDirectory::from_pods([crate::podmeta::PodMeta {
            uid: "pod-a".into(),
            name: "upf-0".into(),
            namespace: "5g".into(),
            labels: [("nf".to_string(), "upf".to_string())].into(),
            config_hash: None,
        }]);
        let mk = |ns: u64, pid, selectors, re: Option<&str>| Strategy {
            priority: false,
            execution_time: ns,
            pid,
            selectors,
            command_regex: re.map(String::from),
        };
        let set = StrategySet::new(vec![
            mk(1_000_000, None, sel("nf", "upf"), None), // 0: selectors
            mk(2_000_000, None, None, Some("^upf$")),    // 1: regex
            mk(3_000_000, None, sel("nf", "upf"), Some("car")), // 2: regex + selectors
            mk(4_000_000, Some(me), None, None),         // 3: pid
            mk(5_000_000, None, None, Some("^up")),      // 4: regex, later
            mk(6_000_000, None, sel("nf", "upf"), None), // 5: selectors, later
        ]);
        let r = resolve(
            &set,
            &ResolveInput {
                proc_root: Path::new("/proc"),
                snapshot: Some(&snap),
                pods: Some(&dir),
                agent_pid: 4242,
            },
        );
        let ns = |pid: u32| r.desired[&pid].slice_ns;
        assert_eq!(ns(me), 4_000_000, "pid beats everything");
        assert_eq!(
            ns(1001),
            2_000_000,
            "regex beats selectors; first regex wins"
        );
        assert_eq!(
            ns(1003),
            2_000_000,
            "regex alone covers processes outside pods"
        );
        assert_eq!(ns(1002), 3_000_000, "regex+selectors beats selectors-only");
        assert!(
            !r.desired.contains_key(&1004),
            "kernel threads are never targeted"
        );
        assert!(!r.desired.contains_key(&1), "PID 1 is never targeted");
        assert_eq!(r.desired.len(), 4);
        assert_eq!(r.per_strategy[0].pids, Vec::<u32>::new());
        assert!(r.per_strategy[0]
            .note
            .as_ref()
            .unwrap()
            .contains("more specific"));
        assert_eq!(r.per_strategy[1].pids, vec![1001, 1003]);
        assert_eq!(r.per_strategy[2].pids, vec![1002]);
        assert_eq!(r.per_strategy[3].pids, vec![me]);
        assert!(r.per_strategy[4].pids.is_empty());
        assert!(r.per_strategy[5].pids.is_empty());
        // Without labels, selectors match nothing and say why.
        let r = resolve(
            &set,
            &ResolveInput {
                proc_root: Path::new("/proc"),
                snapshot: Some(&snap),
                pods: None,
                agent_pid: 4242,
            },
        );
        assert!(r.per_strategy[0]
            .note
            .as_ref()
            .unwrap()
            .contains("--pods-file"));
        assert_eq!(r.desired[&1001].slice_ns, 2_000_000);
    }

    #[test]
    fn regex_validation() {
        let mut s = pid_strategy(1000, 1_000_000);
        s.pid = None;
        s.command_regex = Some("(unclosed".into());
        let e = validate(
            &StrategyRequest {
                strategies: vec![pid_strategy(std::process::id(), 1_000_000), s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (1, "command_regex"));
        assert!(!e.message.contains('\n'));
        s.command_regex = Some("^nginx$".into());
        assert!(validate(
            &StrategyRequest {
                strategies: vec![s.clone()]
            },
            &ctx()
        )
        .is_ok());
        s.pid = Some(1000);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("not both"), "{e}");
    }

    #[test]
    fn state_store_round_trip_is_atomic() {
        let dir = std::env::temp_dir().join(format!("scx_pilot_state_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(dir.join("nested")).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let mut s = pid_strategy(1000, 1_000_000);
        s.command_regex = None;
        let mut r = pid_strategy(1, 2_000_000);
        r.pid = None;
        r.command_regex = Some("^a".into());
        let loaded = |store: &StateStore| store.load().unwrap().map(|l| l.strategies);
        store
            .save(&StrategySet::new(vec![s.clone(), r.clone()]))
            .unwrap();
        assert_eq!(loaded(&store), Some(vec![s.clone(), r]));
        store.save(&StrategySet::new(vec![s.clone()])).unwrap();
        assert_eq!(loaded(&store), Some(vec![s]));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![STATE_FILE.to_string()]);
        std::fs::write(store.path(), "{").unwrap();
        assert!(store.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fake proc root with one process whose start time is `ticks`.
    fn fake_proc(root: &Path, pid: u32, ticks: u64) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("{pid} (worker) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 0 0\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_reused_pid_does_not_inherit_the_strategy() {
        let root = std::env::temp_dir().join(format!("scx_pilot_reuse_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_proc(&root, 4000, 777);
        let set = StrategySet::pinned(vec![pid_strategy(4000, 1_000_000)], &root);
        assert_eq!(set.pid_start_ticks.get(&4000), Some(&777));
        let input = ResolveInput {
            proc_root: &root,
            snapshot: None,
            pods: None,
            agent_pid: 1,
        };
        assert!(resolve(&set, &input).desired.contains_key(&4000));
        // The process exits and a new one gets its PID.
        fake_proc(&root, 4000, 900);
        let r = resolve(&set, &input);
        assert!(r.desired.is_empty());
        let note = r.per_strategy[0].note.as_deref().unwrap();
        assert!(note.contains("another process"), "{note}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn saved_start_times_hold_within_a_boot_only() {
        let dir = std::env::temp_dir().join(format!("scx_pilot_boot_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(&dir).unwrap();
        let me = std::process::id();
        let set = StrategySet::pinned(vec![pid_strategy(me, 1_000_000)], Path::new("/proc"));
        let mine = *set.pid_start_ticks.get(&me).expect("our start time");
        store.save(&set).unwrap();
        let same = store.load().unwrap().unwrap();
        assert_eq!(same.pid_start_ticks.get(&me), Some(&mine));
        let input = ResolveInput {
            proc_root: Path::new("/proc"),
            snapshot: None,
            pods: None,
            agent_pid: 1,
        };
        assert!(resolve(&same.into_set(), &input).desired.contains_key(&me));
        // The same file seen after a reboot: the PID names nobody now.
        let text = std::fs::read_to_string(store.path()).unwrap();
        let boot = store.boot_id.clone().expect("this host's boot id");
        std::fs::write(
            store.path(),
            text.replace(&boot, "00000000-0000-4000-8000-000000000000"),
        )
        .unwrap();
        let other = store.load().unwrap().unwrap();
        assert_eq!(other.strategies, set.strategies);
        let r = resolve(&other.into_set(), &input);
        assert!(r.desired.is_empty(), "{:?}", r.desired);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<StrategyRequest>(
            r#"{"strategies":[{"priority":true,"execution_time":1000000,"pid":5,"prio":1}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `prio`"), "{e}");
    }
}
