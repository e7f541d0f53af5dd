//! Scale (issue 17): the connection table at a million entries, and one network of 250 ports.
//!
//! `conntrack/`: a `ConnTrack` of 1,000,000 masqueraded UDP flows. Lookups take keys in a random
//! order over the whole table (so they miss the CPU caches, as a busy NAT's do), half original and
//! half reply tuples, against the same lookups over 1,024 entries; misses use tuples that are not
//! tracked; `lookup_update` is what the engine does per translated packet (lookup, then count the
//! packet, and move the entry to its LRU list's tail if a refresh interval passed: here within the
//! interval, as a busy flow's packets are; `lookup_update_relink` a second apart, so every packet
//! relinks). Insertion and expiry run on a table kept
//! full: a ring of 1,000 groups of 1,000 entries, group g seen at g ms with a 1,000 ms timeout, so
//! each `expire` removes exactly the oldest group and 1,000 new entries take its place.
//!
//! `mac_table/`: a `CamTable` of 2^20 learned MACs, looked up in a random order over all of
//! them (each lookup a different destination, as a big switch's), one at a time and through
//! `lookup_batch` in batches of 8 to 64, against 1,024 entries; its
//! memory per entry and how fast an empty table learns them. `aging` (printed, not criterion):
//! a million connections and a million MACs all due at once, removed in one call and a budget per
//! round of the engine's loop at a time (`AGING_BUDGET`), with the longest call of each.
//!
//! `flood/`: an engine with 250 discard ports on one network, a batch of 32 broadcast frames from
//! port 0 flooded to the other 249, against the same with 9 ports (to 8).
//!
//! First it prints what one load that misses the caches costs on the machine, the floor under a
//! lookup in a table of a million entries, and how many such misses one core overlaps (1 to 32
//! independent chases at once), the floor under a batch of lookups. Memory is measured two ways and printed: live heap bytes through this binary's counting global
//! allocator (what a table or engine asked for), and the growth of the process's resident set
//! (what it touched).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use dataplane::wire::vnet::VnetHeader;
use dataplane::{CamConfig, CamTable, AGING_BUDGET};
use dataplane::{ConnTrack, CtConfig, CtTimeouts, Direction, Hop, NatKind, Tuple};
use dataplane::{DomainId, MacAddr, PortId, VlanId};
use dataplane::{Engine, EngineConfig, SinkPort, BATCH};

mod common;
use common::{frame, mac};

// ---- memory ----

/// Bytes allocated and not yet freed, over the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct CountingAlloc;

// SAFETY: forwards every call to `System` unchanged, only adding a counter update.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for this call is passed on to `System` unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The process's resident memory in bytes (Linux).
fn rss_bytes() -> isize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<isize>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

// ---- what one load that misses the caches costs ----

/// Nanoseconds per load over `mib` MiB, one pointer per cache line in a random cycle, with huge
/// pages or 4 KiB pages (min of 3 rounds of 10 M loads), following `K` chases of that cycle at
/// once (from `K` points spread along it). With `K` = 1 every load waits for the one before: what
/// a lookup in a table that does not fit in the caches cannot go below. With `K` > 1 the chases
/// are independent, so the CPU has up to `K` misses in flight: latency / (time per load at `K`)
/// is how many it really overlaps, the floor under a batch of lookups.
fn load_ns<const K: usize>(mib: usize, huge: bool) -> f64 {
    const LINE: usize = 8; // u64s per 64-byte line
    const HUGE: usize = 2 << 20;
    let n = (mib << 20) / 64;
    // One 2 MiB page more, to advise whole pages whatever the alignment.
    let mut v: Vec<u64> = Vec::with_capacity(n * LINE + HUGE / 8);
    let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
    let advice = if huge {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    // SAFETY: [start, start + mib MiB) lies inside `v`'s untouched allocation, which outlives
    // the call; the advice only changes how the kernel backs those pages.
    unsafe { libc::madvise(start as *mut libc::c_void, mib << 20, advice) };
    v.resize(n * LINE + HUGE / 8, 0);
    let base = (start - v.as_ptr() as usize) / 8;
    let mut order: Vec<usize> = (0..n).collect();
    Rng(0x9e37_79b9_7f4a_7c15).shuffle(&mut order);
    for i in 0..n {
        v[base + order[i] * LINE] = (base + order[(i + 1) % n] * LINE) as u64;
    }
    let mut at: [usize; K] = std::array::from_fn(|j| base + order[j * n / K] * LINE);
    let rounds = 10_000_000 / K;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..rounds {
            for a in &mut at {
                *a = v[*a] as usize;
            }
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / (rounds * K) as f64);
    }
    black_box(at);
    best
}

/// Nanoseconds per dependent load (`load_ns` with one chase).
fn load_latency_ns(mib: usize, huge: bool) -> f64 {
    load_ns::<1>(mib, huge)
}

/// Prints the time per load over 192 MiB (huge pages) with 1 to 32 independent chases, and the
/// misses in flight that makes (latency / time per load).
fn print_load_parallelism() {
    let latency = load_latency_ns(192, true);
    let mut line = format!("memory: loads over 192 MiB, 1 chase: {latency:.0} ns each");
    for (k, ns) in [
        (2, load_ns::<2>(192, true)),
        (4, load_ns::<4>(192, true)),
        (8, load_ns::<8>(192, true)),
        (16, load_ns::<16>(192, true)),
        (32, load_ns::<32>(192, true)),
    ] {
        line += &format!("; {k} chases: {ns:.1} ns ({:.1} in flight)", latency / ns);
    }
    println!("{line}");
}

// ---- the connection table ----

const MILLION: usize = 1_000_000;
/// Entries per group of the expiry ring (and per timed batch of inserts).
const GROUP: usize = 1_000;
const UDP: u8 = 17;
const UPLINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// Flow `i` of a masquerading NAT: container 10.x.y.z:sport to a remote 198.51.x.y:443, its reply
/// to the uplink's port. Distinct for every i below 2^30 (the original: src and sport carry i; the
/// reply: the remote carries i's low 16 bits and the uplink port the rest).
fn flow(i: u32) -> (Tuple, Tuple) {
    let remote = Ipv4Addr::from(0xc633_0000 | (i & 0xffff));
    let original = Tuple {
        proto: UDP,
        src: Ipv4Addr::from(0x0a00_0000 | (i >> 6)),
        sport: 32768 + (i & 63) as u16,
        dst: remote,
        dport: 443,
    };
    let reply = Tuple {
        proto: UDP,
        src: remote,
        sport: 443,
        dst: UPLINK,
        dport: 1024 + (i >> 16) as u16,
    };
    (original, reply)
}

fn hop(port: u16) -> Hop {
    Hop {
        port: PortId(port),
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
    }
}

fn insert(ct: &mut ConnTrack, i: u32, now_ms: u64) {
    let (original, reply) = flow(i);
    ct.insert(
        original,
        reply,
        NatKind::Masquerade,
        hop(1),
        hop(0),
        None,
        original.src,
        None,
        100,
        now_ms,
    )
    .expect("distinct flows");
}

/// A table for `max` entries whose UDP flows time out after `GROUP` ms unanswered.
fn table(max: usize) -> ConnTrack {
    ConnTrack::new(CtConfig {
        max_entries: max,
        timeouts: CtTimeouts {
            udp_unreplied_ms: GROUP as u64,
            ..CtTimeouts::default()
        },
    })
}

/// xorshift64: a reproducible shuffle without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

/// Flows `range`, each as its original or its reply tuple (alternately), in a random order.
fn keys(range: std::ops::Range<u32>, rng: &mut Rng) -> Vec<Tuple> {
    let mut keys: Vec<Tuple> = range
        .map(|i| {
            let (original, reply) = flow(i);
            if i % 2 == 0 {
                original
            } else {
                reply
            }
        })
        .collect();
    rng.shuffle(&mut keys);
    keys
}

/// Looks up `keys` a batch of `GROUP` at a time, cycling through them; with `read`, also reads
/// the entry found, as the NAT stage does (the hop its packet leaves by).
fn lookup_bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    ct: &ConnTrack,
    keys: &[Tuple],
    read: bool,
) {
    let mut at = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut found = 0u32;
            for k in &keys[at..at + GROUP] {
                found += match ct.lookup(black_box(k)) {
                    Some((id, dir)) if read => {
                        let e = ct.get(id);
                        let hop = match dir {
                            Direction::Original => e.out_original,
                            Direction::Reply => e.out_reply,
                        };
                        u32::from(hop.port.0)
                    }
                    Some(_) => 1,
                    None => 0,
                };
            }
            at = (at + GROUP) % (keys.len() - GROUP + 1);
            found
        })
    });
}

/// `lookup_bench` through `lookup_batch`, `B` keys a batch and the rest of each `GROUP` one at a
/// time; with `read_entries`, through `lookup_batch_prefetching` (which asks for each hit's entry
/// lines) and each hit's entry then read, as the NAT stage reads the hop.
fn lookup_batch_bench<const B: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    ct: &ConnTrack,
    keys: &[Tuple],
    read_entries: bool,
) {
    let mut at = 0;
    let read = |found: Option<_>| match found {
        Some((id, dir)) if read_entries => {
            let e = ct.get(id);
            u32::from(match dir {
                Direction::Original => e.out_original.port.0,
                Direction::Reply => e.out_reply.port.0,
            })
        }
        Some(_) => 1,
        None => 0,
    };
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut found = 0u32;
            let group = &keys[at..at + GROUP];
            let mut batches = group.chunks_exact(B);
            for batch in &mut batches {
                let batch: &[Tuple; B] = batch.try_into().unwrap();
                let hits = if read_entries {
                    ct.lookup_batch_prefetching(black_box(batch))
                } else {
                    ct.lookup_batch(black_box(batch))
                };
                for f in hits {
                    found += read(f);
                }
            }
            for k in batches.remainder() {
                found += read(ct.lookup(black_box(k)));
            }
            at = (at + GROUP) % (keys.len() - GROUP + 1);
            found
        })
    });
}

fn conntrack(c: &mut Criterion) {
    let mut g = c.benchmark_group("conntrack");
    g.throughput(Throughput::Elements(GROUP as u64));
    let mut rng = Rng(0x5eed_1234_abcd_0001);

    println!(
        "memory: a dependent load costs {:.0} ns over 192 MiB with huge pages, {:.0} ns with \
         4 KiB pages, {:.0} ns over 4 MiB",
        load_latency_ns(192, true),
        load_latency_ns(192, false),
        load_latency_ns(4, true)
    );
    print_load_parallelism();

    // A million entries: memory and the rate at which an empty table fills. Linux's timeouts
    // (30 s for these unanswered UDP flows, so a packet relinks its entry at most once a second;
    // the ring below shortens them to expire a group a round).
    let (heap0, rss0) = (live_bytes(), rss_bytes());
    let mut ct = ConnTrack::new(CtConfig {
        max_entries: MILLION,
        timeouts: CtTimeouts::default(),
    });
    let heap = live_bytes() - heap0;
    let start = Instant::now();
    for i in 0..MILLION as u32 {
        insert(&mut ct, i, (i as usize / GROUP) as u64);
    }
    let took = start.elapsed();
    let rss = rss_bytes() - rss0;
    println!(
        "conntrack: {MILLION} entries inserted into an empty table in {:.3} s ({:.2} M/s); \
         heap {} bytes per entry (allocated by ConnTrack::new for max_entries = {MILLION}), \
         resident {} bytes per entry once full",
        took.as_secs_f64(),
        MILLION as f64 / took.as_secs_f64() / 1e6,
        heap / MILLION as isize,
        rss / MILLION as isize
    );

    // Lookups at 1M: hits and misses, random order; then the same at 1,024 entries.
    let hits = keys(0..MILLION as u32, &mut rng);
    let misses = keys(MILLION as u32..2 * MILLION as u32, &mut rng);
    lookup_bench(&mut g, "lookup_hit_1M_random", &ct, &hits, false);
    lookup_bench(&mut g, "lookup_get_hit_1M_random", &ct, &hits, true);
    lookup_batch_bench::<32>(&mut g, "lookup_get_hit_1M_random_batch32", &ct, &hits, true);
    lookup_batch_bench::<16>(&mut g, "lookup_get_hit_1M_random_batch16", &ct, &hits, true);
    lookup_batch_bench::<16>(&mut g, "lookup_hit_1M_random_batch16", &ct, &hits, false);
    lookup_batch_bench::<32>(&mut g, "lookup_hit_1M_random_batch32", &ct, &hits, false);
    lookup_bench(&mut g, "lookup_miss_1M_random", &ct, &misses, false);
    lookup_batch_bench::<32>(&mut g, "lookup_miss_1M_random_batch32", &ct, &misses, false);
    let mut at = 0;
    let now = (MILLION / GROUP) as u64;
    g.bench_function("lookup_update_hit_1M_random", |b| {
        b.iter(|| {
            for k in &hits[at..at + GROUP] {
                if let Some((id, dir)) = ct.lookup(black_box(k)) {
                    ct.update(id, dir, None, 100, now);
                }
            }
            at = (at + GROUP) % (hits.len() - GROUP + 1);
        })
    });
    // Each round a second later than the last: every update moves its entry to the list's tail.
    let mut later = now;
    g.bench_function("lookup_update_relink_1M_random", |b| {
        b.iter(|| {
            // A second: the connection table's refresh interval (REFRESH_GRANULARITY_MS).
            later += 1000;
            for k in &hits[at..at + GROUP] {
                if let Some((id, dir)) = ct.lookup(black_box(k)) {
                    ct.update(id, dir, None, 100, later);
                }
            }
            at = (at + GROUP) % (hits.len() - GROUP + 1);
        })
    });
    drop((hits, misses));

    // The lookup_update above refreshed entries (moved them to the list tails), so the ring
    // starts from a table filled afresh.
    drop(ct);
    let mut ct = table(MILLION);
    for i in 0..MILLION as u32 {
        insert(&mut ct, i, (i as usize / GROUP) as u64);
    }
    let mut ring = Ring {
        round: 0,
        next: MILLION as u32,
    };
    g.bench_function("insert_1M_full_after_expiry", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ring.step(&mut ct).1).sum())
    });
    g.bench_function("expire_1M_oldest_group", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ring.step(&mut ct).0).sum())
    });
    // Full and nothing expired: every insert first evicts the oldest unanswered entry.
    g.bench_function("insert_1M_full_evicting", |b| {
        b.iter(|| {
            let now = (MILLION / GROUP) as u64 + ring.round;
            for _ in 0..GROUP {
                insert(&mut ct, ring.next, now);
                ring.next += 1;
            }
        })
    });
    drop(ct);

    // The same lookups over a table that fits in the caches.
    let mut small = table(1024);
    for i in 0..1024 {
        insert(&mut small, i, 0);
    }
    let hits = keys(0..1024, &mut rng);
    let misses = keys(MILLION as u32..MILLION as u32 + 1024, &mut rng);
    lookup_bench(&mut g, "lookup_hit_1024_random", &small, &hits, false);
    lookup_bench(&mut g, "lookup_get_hit_1024_random", &small, &hits, true);
    lookup_batch_bench::<32>(
        &mut g,
        "lookup_get_hit_1024_random_batch32",
        &small,
        &hits,
        true,
    );
    lookup_batch_bench::<16>(
        &mut g,
        "lookup_hit_1024_random_batch16",
        &small,
        &hits,
        false,
    );
    lookup_bench(&mut g, "lookup_miss_1024_random", &small, &misses, false);
    g.finish();
}

/// A table kept full: group g (`GROUP` entries) was seen at g ms and times out after `GROUP` ms,
/// so at round r the clock is `MILLION / GROUP + r` ms and exactly group r expires.
struct Ring {
    round: u64,
    next: u32,
}

impl Ring {
    /// Expires the oldest group and inserts a new one; returns how long each took.
    fn step(&mut self, ct: &mut ConnTrack) -> (Duration, Duration) {
        let now = (MILLION / GROUP) as u64 + self.round;
        self.round += 1;
        let start = Instant::now();
        let expired = ct.expire(now);
        let expiring = start.elapsed();
        assert_eq!(expired, GROUP, "the oldest group, exactly");
        let start = Instant::now();
        for _ in 0..GROUP {
            insert(ct, self.next, now);
            self.next += 1;
        }
        (expiring, start.elapsed())
    }
}

// ---- the MAC table ----

/// 2^20 MACs: "a million" in the MAC table's figures.
const MACS: u32 = 1 << 20;

/// A MAC table for `max` entries, all of which one port may hold; MAC i learned at i / 1000 ms
/// on port i % 2 (a thousand new MACs a millisecond).
fn mac_table(max: u32) -> CamTable {
    let mut cam = CamTable::new(CamConfig {
        max_entries: max as usize,
        max_per_port: max as usize,
        ..CamConfig::default()
    });
    for i in 0..max {
        cam.learn(
            DomainId(0),
            VlanId(0),
            mac(i),
            PortId((i % 2) as u16),
            u64::from(i / 1000),
        );
    }
    cam
}

/// Looks up `keys` (MAC numbers) a batch of `GROUP` at a time, cycling through them.
fn mac_lookup_bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    cam: &CamTable,
    keys: &[MacAddr],
) {
    let mut at = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut found = 0u32;
            for k in &keys[at..at + GROUP] {
                if let Some(port) = cam.lookup(DomainId(0), VlanId(0), black_box(*k)) {
                    found += u32::from(port.0);
                }
            }
            at = (at + GROUP) % (keys.len() - GROUP + 1);
            found
        })
    });
}

/// `mac_lookup_bench` through `CamTable::lookup_batch`, `B` keys a batch (and the rest of each
/// `GROUP` one at a time).
fn mac_lookup_batch_bench<const B: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    cam: &CamTable,
    keys: &[MacAddr],
) {
    let keys: Vec<(DomainId, VlanId, MacAddr)> =
        keys.iter().map(|&m| (DomainId(0), VlanId(0), m)).collect();
    let mut at = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut found = 0u32;
            let group = &keys[at..at + GROUP];
            let mut batches = group.chunks_exact(B);
            for batch in &mut batches {
                let batch: &[_; B] = batch.try_into().unwrap();
                for port in cam.lookup_batch(black_box(batch)).into_iter().flatten() {
                    found += u32::from(port.0);
                }
            }
            for &(d, v, m) in batches.remainder() {
                if let Some(port) = cam.lookup(d, v, black_box(m)) {
                    found += u32::from(port.0);
                }
            }
            at = (at + GROUP) % (keys.len() - GROUP + 1);
            found
        })
    });
}

fn mac_table_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("mac_table");
    g.throughput(Throughput::Elements(GROUP as u64));
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let (heap0, rss0) = (live_bytes(), rss_bytes());
    let start = Instant::now();
    let cam = mac_table(MACS);
    let took = start.elapsed();
    let (heap, rss) = (live_bytes() - heap0, rss_bytes() - rss0);
    println!(
        "mac_table: {MACS} MACs learned into an empty table (sized for them) in {:.3} s \
         ({:.2} M/s, table made included); heap {} bytes per entry, resident {} bytes per entry",
        took.as_secs_f64(),
        f64::from(MACS) / took.as_secs_f64() / 1e6,
        heap / MACS as isize,
        rss / MACS as isize
    );
    let mut keys: Vec<MacAddr> = (0..MACS).map(mac).collect();
    rng.shuffle(&mut keys);
    mac_lookup_bench(&mut g, "lookup_hit_1M_random", &cam, &keys);
    mac_lookup_batch_bench::<8>(&mut g, "lookup_hit_1M_random_batch8", &cam, &keys);
    mac_lookup_batch_bench::<16>(&mut g, "lookup_hit_1M_random_batch16", &cam, &keys);
    mac_lookup_batch_bench::<32>(&mut g, "lookup_hit_1M_random_batch32", &cam, &keys);
    mac_lookup_batch_bench::<64>(&mut g, "lookup_hit_1M_random_batch64", &cam, &keys);
    let mut misses: Vec<MacAddr> = (MACS..2 * MACS).map(mac).collect();
    rng.shuffle(&mut misses);
    mac_lookup_bench(&mut g, "lookup_miss_1M_random", &cam, &misses);
    drop((cam, keys, misses));
    let small = mac_table(1024);
    let mut keys: Vec<MacAddr> = (0..1024).map(mac).collect();
    rng.shuffle(&mut keys);
    mac_lookup_bench(&mut g, "lookup_hit_1024_random", &small, &keys);
    mac_lookup_batch_bench::<32>(&mut g, "lookup_hit_1024_random_batch32", &small, &keys);
    g.finish();
}

// ---- aging a million entries at once ----

/// Times one aging pass over a table whose every entry is due, in calls of at most `budget`
/// entries (what one round of the engine's loop does): each call's time, and the total.
fn time_budgeted(mut age: impl FnMut(usize) -> usize, budget: usize) -> Calls {
    let mut calls = Vec::new();
    loop {
        let start = Instant::now();
        let removed = age(budget);
        calls.push(start.elapsed());
        if removed < budget {
            calls.sort();
            return Calls(calls);
        }
    }
}

/// The durations of a pass's calls, sorted.
struct Calls(Vec<Duration>);

impl std::fmt::Display for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| self.0[((self.0.len() - 1) as f64 * q) as usize];
        write!(
            f,
            "{} calls, median {:.3} ms, p99 {:.3} ms, longest {:.3} ms, all {:.3} s",
            self.0.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0)),
            self.0.iter().sum::<Duration>().as_secs_f64()
        )
    }
}

/// Not a criterion benchmark (one pass takes a table filled for it): a million connections and
/// a million MACs falling due at once, removed in one call as before and a budget at a time as
/// the engine now does (`AGING_BUDGET` per round of its loop); prints each call's time.
fn aging(_: &mut Criterion) {
    let now = 2 * GROUP as u64 + MILLION as u64;
    for budget in [usize::MAX, AGING_BUDGET] {
        let mut ct = table(MILLION);
        for i in 0..MILLION as u32 {
            insert(&mut ct, i, 0);
        }
        let flows = time_budgeted(|b| ct.expire_at_most(now, b), budget);
        assert_eq!(ct.stats().entries, 0);
        drop(ct);
        let mut cam = mac_table(MACS);
        // Past the default 300 s aging time of every entry.
        let later = 400_000 + u64::from(MACS / 1000);
        let macs = time_budgeted(|b| cam.age_at_most(later, b), budget);
        assert_eq!(cam.len(), 0);
        let name = if budget == usize::MAX {
            "unbounded".to_string()
        } else {
            format!("budget {budget}")
        };
        println!("aging, {name}: {MILLION} connections due at once: {flows}");
        println!("aging, {name}: {MACS} MACs due at once: {macs}");
    }
}

// ---- one network of 250 ports ----

fn flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("flood");
    g.throughput(Throughput::Elements(BATCH as u64));
    // What the engine holds besides its connection table (the default preallocates 65,536).
    let heap0 = live_bytes();
    let small = EngineConfig {
        conntrack: CtConfig {
            max_entries: 16,
            ..CtConfig::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::new(small).unwrap();
    println!(
        "flood: engine with a 16-entry connection table: heap {} KiB",
        (live_bytes() - heap0) / 1024
    );
    drop(engine);
    for ports in [9usize, 250] {
        let (heap0, rss0) = (live_bytes(), rss_bytes());
        let (mut e, _handle) = Engine::new(EngineConfig::default()).unwrap();
        let (heap1, rss1) = (live_bytes(), rss_bytes());
        for p in 0..ports {
            e.add_port(Box::new(SinkPort::new(&format!("p{p}"), true)), DomainId(0))
                .unwrap();
        }
        let (heap2, rss2) = (live_bytes(), rss_bytes());
        // One broadcast from each of 32 MACs on port 0, learned before timing.
        for i in 0..BATCH {
            let f = frame(MacAddr::BROADCAST, mac(i as u32));
            e.rx_batch_mut().fill(i, VnetHeader::default(), &f);
        }
        e.process_received(PortId(0), DomainId(0), BATCH);
        let (heap3, rss3) = (live_bytes(), rss_bytes());
        println!(
            "flood: engine with default tables: heap {} KiB, resident {} KiB; {ports} ports add \
             heap {} KiB ({} bytes each), resident {} KiB; after the first flood: heap +{} KiB, \
             resident +{} KiB",
            (heap1 - heap0) / 1024,
            (rss1 - rss0) / 1024,
            (heap2 - heap1) / 1024,
            (heap2 - heap1) / ports as isize,
            (rss2 - rss1) / 1024,
            (heap3 - heap2) / 1024,
            (rss3 - rss2) / 1024,
        );
        g.bench_function(format!("broadcast_to_{}_ports_batch32", ports - 1), |b| {
            b.iter(|| e.process_received(PortId(0), DomainId(0), BATCH))
        });
    }
    g.finish();
}

criterion_group!(benches, conntrack, mac_table_scale, aging, flood);
criterion_main!(benches);
