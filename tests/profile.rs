//! The profiler of `backend::profile` (what `lmech-bench --split` reports):
//! spans count once at the outermost level, nothing counts while it is off,
//! and a real workload's CPU ops land in their parts. Its own test binary,
//! because the counters are process-wide.

use lmech::backend::cpu::Cpu;
use lmech::backend::profile::{self, Part, ProcessTimes};
use lmech::backend::Backend;

#[test]
fn spans_record_once_at_the_outermost_level_and_only_while_on() {
    profile::reset();
    drop(profile::span(Part::Gemm));
    assert_eq!(profile::snapshot().calls, [0; 9], "recorded while off");

    profile::enable(true);
    {
        let _outer = profile::span(Part::Loss);
        let _inner = profile::span(Part::Gemm);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    drop(profile::span(Part::Reduce));
    // A matmul through the CPU backend is a Gemm span; its output buffer
    // (>= 16384 elements, not cached yet at this length) is a fresh buffer.
    let be = Cpu::f32();
    let a = be.from_f64(&[129, 130], &vec![0.5; 129 * 130]).unwrap();
    let b = be.from_f64(&[130, 131], &vec![0.25; 130 * 131]).unwrap();
    let c = be.matmul(&a, false, &b, false, 1.0).unwrap();
    assert_eq!(be.to_f64(&c).unwrap()[0], 0.5 * 0.25 * 130.0);
    profile::enable(false);
    drop(profile::span(Part::Sync));

    let s = profile::snapshot();
    let calls = |p: Part| s.calls[p.index()];
    assert_eq!(calls(Part::Loss), 1);
    assert_eq!(
        calls(Part::Gemm),
        1,
        "the nested span counted, or the matmul did not"
    );
    assert_eq!(
        calls(Part::Reduce),
        1,
        "a closed span did not restore the depth"
    );
    assert_eq!(calls(Part::Upload), 2);
    assert_eq!(calls(Part::Download), 1);
    assert_eq!(calls(Part::Sync), 0, "recorded after it was turned off");
    assert!(s.seconds[Part::Loss.index()] >= 0.002);
    assert!(s.fresh_buffers >= 1 && s.fresh_bytes >= 129 * 131 * 4);
    profile::reset();
    assert_eq!(profile::snapshot().total(), 0.0);
}

#[test]
fn process_times_read_and_subtract() {
    let Some(before) = ProcessTimes::now() else {
        return; // not Linux: nothing to read
    };
    let v: Vec<u8> = vec![1; 64 << 20]; // touching fresh pages faults them in
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 64 << 20);
    let d = ProcessTimes::now().unwrap().since(&before);
    assert!(d.minor_faults > 1000, "{d:?}");
    assert!(d.user_seconds >= 0.0 && d.sys_seconds >= 0.0);
}
