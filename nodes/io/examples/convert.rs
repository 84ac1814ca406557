//! `cargo run -p petri-io --example convert -- IN OUT [none|lzw|deflate]`: load any supported
//! input and write it as an ImageJ TIFF (what `io.load_stack` → `io.save_tiff` does in a graph).
use petri_api::NodeCtx;
use petri_io::{Compression, LoadOptions, StackKind, load_stack, save_tiff};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: convert IN OUT [none|lzw|deflate]");
        std::process::exit(2);
    }
    let c = Compression::parse(args.get(3).map(String::as_str).unwrap_or("none")).unwrap_or(Compression::None);
    let ctx = NodeCtx::detached();
    let run = || -> Result<(), petri_api::NodeError> {
        let s = load_stack(args[1].as_ref(), &LoadOptions::default(), &ctx)?;
        println!("read {} voxel {:?}", s.describe(), s.voxel_size());
        save_tiff(&s, StackKind::Image, args[2].as_ref(), c, &ctx)
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
