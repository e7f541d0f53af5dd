//! `wakeup`: what waking a sleeping thread costs on this machine, the cost an engine that sleeps
//! pays per hop (bench/RESULTS.md, "RTT and wake-ups").
//!
//! Two threads play ping-pong: the first wakes the second and sleeps until the second wakes it
//! back, `ROUNDS` times, resting `GAP_US` between rounds (as `ping -i 0.01` rests 10 ms, so the
//! CPUs go idle in between, as they do between pings). Each round is two wake-ups; the program
//! prints the median, 90th and 99th percentiles and the maximum of one wake-up (half a round) for each placement:
//!
//! - `cross`: the threads pinned to two different CPUs, the second asleep (a packet arriving for
//!   a sleeping engine pinned to another CPU than the sender: an inter-processor interrupt, and
//!   on a VM an idle virtual CPU's exit from `hlt`);
//! - `same`: both pinned to one CPU (the woken thread runs when the waker sleeps);
//! - `spin`: two CPUs, the second spinning instead of sleeping (`--busy-poll`); the first still
//!   sleeps, as ping does.
//!
//! Usage: wakeup [ROUNDS=2000] [GAP_US=10000] [CPU_A=0] [CPU_B=1]
//! Output: one line per placement, `wakeup placement=P median_us=M p90_us=Q p99_us=R max_us=X`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::affinity::pin_current_thread;

/// One side's mailbox: the round it was last handed, and the thread that waits on it.
struct Turn {
    round: AtomicU64,
}

impl Turn {
    fn new() -> Arc<Turn> {
        Arc::new(Turn {
            round: AtomicU64::new(0),
        })
    }

    /// Waits until round `r` is handed over: parking (a futex sleep) unless `spin`.
    fn wait(&self, r: u64, spin: bool) {
        while self.round.load(Ordering::Acquire) < r {
            if spin {
                std::hint::spin_loop();
            } else {
                thread::park();
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `rounds` rounds with the given placement; returns one wake-up's time per round (µs).
fn run(rounds: u64, gap: Duration, cpus: (usize, usize), spin: bool) -> Vec<f64> {
    let (to_b, to_a) = (Turn::new(), Turn::new());
    let (b_turn, a_turn) = (to_b.clone(), to_a.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let a_thread = thread::current();
    let b = thread::spawn(move || {
        pin_current_thread(cpus.1).expect("pin the second thread");
        ready_tx.send(thread::current()).unwrap();
        for r in 1..=rounds {
            b_turn.wait(r, spin);
            a_turn.round.store(r, Ordering::Release);
            a_thread.unpark();
        }
    });
    pin_current_thread(cpus.0).expect("pin the first thread");
    let b_thread = ready_rx.recv().unwrap();
    let mut times = Vec::with_capacity(rounds as usize);
    for r in 1..=rounds {
        thread::sleep(gap);
        let start = Instant::now();
        to_b.round.store(r, Ordering::Release);
        b_thread.unpark();
        to_a.wait(r, false);
        times.push(start.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    b.join().unwrap();
    times
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("wakeup: '{a}' is not a number (usage: wakeup [ROUNDS] [GAP_US] [CPU_A] [CPU_B])");
                std::process::exit(2)
            })
        })
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (rounds, gap) = (arg(0, 2000).max(1), Duration::from_micros(arg(1, 10_000)));
    let (a, b) = (arg(2, 0) as usize, arg(3, 1) as usize);
    for (name, cpus, spin) in [
        ("cross", (a, b), false),
        ("same", (a, a), false),
        ("spin", (a, b), true),
    ] {
        let mut t = run(rounds, gap, cpus, spin);
        t.sort_by(|x, y| x.total_cmp(y));
        println!(
            "wakeup placement={name} median_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.1}",
            percentile(&t, 0.5),
            percentile(&t, 0.9),
            percentile(&t, 0.99),
            percentile(&t, 1.0)
        );
    }
}
