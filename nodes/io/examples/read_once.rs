//! `read_once FILE [N]`: loads FILE N times with petri-io and prints the best time (profiling aid).
use petri_api::NodeCtx;
use petri_io::{LoadOptions, load_stack};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let t = std::time::Instant::now();
        let s = load_stack(args[1].as_ref(), &LoadOptions::default(), &NodeCtx::detached()).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&s);
    }
    println!("{:.3} s", best);
}
