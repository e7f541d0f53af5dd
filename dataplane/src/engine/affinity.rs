//! Where and how urgently the engine thread runs: pinned to one CPU (`--cpu`), and at a nice
//! value (`--nice`).
//!
//! Why pin: the engine is a third busy party beside the two endpoints of a flow, and on a small
//! machine it shares the CPUs with them. Left free, the scheduler moves it between CPUs after the
//! endpoints' wake-ups; pinned, the endpoints settle around it. On the 2-vCPU benchmark machine
//! pinning raised TCP through the switch by about 20% (11.1 -> 13.8 Gbit/s bridged, 10.8 -> 13.0
//! through DNAT; bench/RESULTS.md), whichever of the two CPUs it was. Only the engine thread is
//! pinned: the control threads sleep almost always, and other tasks may still run on that CPU.
//!
//! Why a nice value, off by default: it is a trade. At nice -20 (with a 20 µs spin) new TCP
//! connections per second through a published port rose by 12% with 4 clients and 35% with 64,
//! because endpoints no longer delay the engine; bulk TCP fell by about 10%, because the engine
//! now preempts the receiving endpoint that shares its CPU (bench/RESULTS.md).

use std::fmt;
use std::str::FromStr;

/// The CPU choice for the engine thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuPin {
    /// The last CPU the process may run on, when it may run on more than one (the default).
    #[default]
    Auto,
    /// Never pinned: the scheduler places the engine.
    None,
    /// This CPU (it must be in the process's allowed set).
    Cpu(usize),
}

impl FromStr for CpuPin {
    type Err = String;

    fn from_str(s: &str) -> Result<CpuPin, String> {
        match s {
            "auto" => Ok(CpuPin::Auto),
            "none" => Ok(CpuPin::None),
            _ => s
                .parse::<usize>()
                .ok()
                .filter(|&c| c < MAX_CPUS)
                .map(CpuPin::Cpu)
                .ok_or_else(|| format!("'{s}' is not a CPU: expected auto, none or a CPU number")),
        }
    }
}

impl fmt::Display for CpuPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuPin::Auto => f.write_str("auto"),
            CpuPin::None => f.write_str("none"),
            CpuPin::Cpu(c) => write!(f, "{c}"),
        }
    }
}

/// CPUs a `cpu_set_t` can name.
const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// The CPUs the calling thread may run on, in ascending order.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the bit of an index below CPU_SETSIZE of a valid set.
    Ok((0..MAX_CPUS)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// The CPU `pin` means for a thread allowed on `allowed`, or `None` when it stays free.
/// An explicit CPU outside the allowed set is an error that names the allowed set.
pub fn choose(pin: CpuPin, allowed: &[usize]) -> Result<Option<usize>, String> {
    match pin {
        CpuPin::None => Ok(None),
        CpuPin::Auto if allowed.len() < 2 => Ok(None),
        CpuPin::Auto => Ok(allowed.last().copied()),
        CpuPin::Cpu(c) if allowed.contains(&c) => Ok(Some(c)),
        CpuPin::Cpu(c) => Err(format!(
            "CPU {c} is not one this process may run on (allowed: {})",
            format_cpus(allowed)
        )),
    }
}

/// The CPU of each of `n` workers: `Auto` puts worker 0 on the last allowed CPU (as the single
/// engine always was) and the next ones on the CPUs before it; `Cpu(c)` starts at `c` and goes up
/// through the allowed set; both wrap when there are more workers than CPUs. `None` pins nothing.
pub fn placements(pin: CpuPin, n: usize, allowed: &[usize]) -> Result<Vec<Option<usize>>, String> {
    let first = choose(pin, allowed)?;
    let Some(first) = first else {
        return Ok(vec![None; n]);
    };
    let at = allowed.iter().position(|&c| c == first).unwrap_or(0);
    let len = allowed.len();
    Ok((0..n)
        .map(|i| {
            let k = match pin {
                CpuPin::Cpu(_) => (at + i) % len,
                _ => (at + len - i % len) % len,
            };
            Some(allowed[k])
        })
        .collect())
}

/// Checks `pin` against the calling thread's allowed CPUs, as `choose` does.
pub fn resolve(pin: CpuPin) -> Result<Option<usize>, String> {
    let allowed = allowed_cpus().map_err(|e| format!("reading the CPU affinity: {e}"))?;
    choose(pin, &allowed)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= MAX_CPUS {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The range `--nice` accepts, as setpriority(2) does.
pub const NICE_RANGE: std::ops::RangeInclusive<i32> = -20..=19;

/// Sets the calling thread's nice value (Linux keeps one per thread).
pub fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: plain syscall on the calling thread's id; the result is checked.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `cpu` (if any) and sets its nice value (if not 0). Errors say
/// which of the two failed.
pub fn place_current_thread(cpu: Option<usize>, nice: i32) -> std::io::Result<()> {
    if let Some(cpu) = cpu {
        pin_current_thread(cpu).map_err(|e| {
            std::io::Error::new(e.kind(), format!("pinning the engine to CPU {cpu}: {e}"))
        })?;
    }
    if nice != 0 {
        set_current_thread_nice(nice).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("setting the engine's nice value {nice}: {e}"),
            )
        })?;
    }
    Ok(())
}

/// "0-3,6" style, as the kernel prints CPU lists.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auto_none_and_numbers() {
        assert_eq!("auto".parse(), Ok(CpuPin::Auto));
        assert_eq!("none".parse(), Ok(CpuPin::None));
        assert_eq!("3".parse(), Ok(CpuPin::Cpu(3)));
        for bad in ["", "-1", "one", "1.5", "99999"] {
            let err = bad.parse::<CpuPin>().unwrap_err();
            assert!(err.contains("is not a CPU"), "{bad}: {err}");
        }
        assert_eq!(CpuPin::Cpu(7).to_string(), "7");
        assert_eq!("auto".parse::<CpuPin>().unwrap().to_string(), "auto");
    }

    #[test]
    fn auto_takes_the_last_allowed_cpu_and_leaves_a_single_cpu_free() {
        assert_eq!(choose(CpuPin::Auto, &[0, 1]), Ok(Some(1)));
        assert_eq!(choose(CpuPin::Auto, &[2, 5, 9]), Ok(Some(9)));
        assert_eq!(choose(CpuPin::Auto, &[4]), Ok(None));
        assert_eq!(choose(CpuPin::None, &[0, 1]), Ok(None));
    }

    #[test]
    fn an_explicit_cpu_must_be_allowed() {
        assert_eq!(choose(CpuPin::Cpu(0), &[0, 1]), Ok(Some(0)));
        let err = choose(CpuPin::Cpu(4), &[0, 1, 2, 6]).unwrap_err();
        assert_eq!(
            err,
            "CPU 4 is not one this process may run on (allowed: 0-2,6)"
        );
    }

    #[test]
    fn sets_a_threads_nice_value_and_only_that_threads() {
        fn nice_of_current() -> i32 {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
            // Field 19 (nice) counted after the ")" that closes the command name.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse().unwrap()
        }
        let before = nice_of_current();
        let seen = std::thread::spawn(|| {
            // Raising the nice value needs no privilege.
            place_current_thread(None, 5).unwrap();
            nice_of_current()
        })
        .join()
        .unwrap();
        assert_eq!(seen, 5);
        assert_eq!(nice_of_current(), before);
    }

    #[test]
    fn formats_cpu_lists_as_the_kernel_does() {
        assert_eq!(format_cpus(&[]), "");
        assert_eq!(format_cpus(&[3]), "3");
        assert_eq!(format_cpus(&[0, 1, 2, 3]), "0-3");
        assert_eq!(format_cpus(&[0, 2, 3, 7]), "0,2-3,7");
    }

    #[test]
    fn pins_a_thread_to_an_allowed_cpu() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        let cpu = *allowed.last().unwrap();
        let seen = std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![cpu]);
        // The calling thread is untouched.
        assert_eq!(allowed_cpus().unwrap(), allowed);
    }

    #[test]
    fn auto_starts_where_the_single_engine_ran_and_walks_down() {
        assert_eq!(placements(CpuPin::Auto, 1, &[0, 1]).unwrap(), vec![Some(1)]);
        assert_eq!(
            placements(CpuPin::Auto, 3, &[0, 1]).unwrap(),
            vec![Some(1), Some(0), Some(1)]
        );
        assert_eq!(
            placements(CpuPin::Cpu(2), 3, &[0, 2, 5]).unwrap(),
            vec![Some(2), Some(5), Some(0)]
        );
        assert_eq!(
            placements(CpuPin::None, 2, &[0, 1]).unwrap(),
            vec![None, None]
        );
        // One allowed CPU: auto leaves the threads free, as it left the single engine.
        assert_eq!(placements(CpuPin::Auto, 2, &[4]).unwrap(), vec![None, None]);
        assert!(placements(CpuPin::Cpu(7), 2, &[0, 1]).is_err());
    }
}
