//! The custom ops against PyTorch 2.15 (float64 reference, tests/fixtures/learn/make_torch_ops.py):
//! forward values and the gradients of sum(output · r), r = cos(0.37·i).
use candle_core::{Device, Tensor, Var};
use petri_learn::ops::{conv, norm, pool, upsample};

fn t(v: &serde_json::Value) -> Var {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    Var::from_vec(data, shape.as_slice(), &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(name: &str, what: &str, got: &[f32], want: &serde_json::Value, tol: f32) {
    let want: Vec<f32> = want.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(got.len(), want.len(), "{name} {what}: length");
    let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max);
    assert!(d < tol, "{name} {what}: relative difference {d}");
}

#[test]
fn ops_match_pytorch() {
    let path = petri_testkit::fixtures().join("learn/torch_ops.json");
    let j = petri_testkit::read_json(&path);
    let mut seen = 0;
    for c in j["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let ins = &c["inputs"];
        let x = t(&ins["x"]);
        let (out, others): (Tensor, Vec<(&str, Var)>) = match name {
            "conv2d_same" | "conv3d_same" | "conv2d_valid" | "conv3d_aniso" => {
                let w = t(&ins["w"]);
                let pad = match name {
                    "conv2d_same" | "conv3d_same" => [1, 1, 1],
                    "conv2d_valid" => [0, 0, 0],
                    _ => [0, 1, 1],
                };
                (conv::conv(&x, &w, pad).unwrap(), vec![("w", w)])
            }
            "maxpool2d" | "maxpool3d" => (pool::max_pool(&x, [2, 2, 2]).unwrap(), vec![]),
            "maxpool3d_aniso" => (pool::max_pool(&x, [1, 2, 2]).unwrap(), vec![]),
            "upsample3d_nearest" => (upsample::upsample_nearest(&x, [1, 2, 2]).unwrap(), vec![]),
            "conv_transpose2d_k2s2" | "conv_transpose3d_k2s2" => {
                let w = t(&ins["w"]);
                (upsample::conv_transpose_k_eq_s(&x, &w, [2, 2, 2]).unwrap(), vec![("w", w)])
            }
            "batchnorm_relu_train" => {
                let (g, b) = (t(&ins["g"]), t(&ins["b"]));
                (norm::batch_norm_train(&x, &g, &b, true).unwrap().0, vec![("g", g), ("b", b)])
            }
            other => panic!("unknown case {other}"),
        };
        close(name, "output", &flat(&out), &c["output"]["data"], 1e-5);
        let n = out.elem_count();
        let r = Tensor::new((0..n).map(|i| (0.37 * i as f64).cos() as f32).collect::<Vec<_>>(), &Device::Cpu)
            .unwrap()
            .reshape(out.shape())
            .unwrap();
        let g = (&out * &r).unwrap().sum_all().unwrap().backward().unwrap();
        close(name, "grad x", &flat(g.get(&x).unwrap()), &c["grads"]["x"], 1e-4);
        for (k, v) in &others {
            close(name, &format!("grad {k}"), &flat(g.get(v).unwrap()), &c["grads"][*k], 1e-4);
        }
        seen += 1;
    }
    assert_eq!(seen, 11);
}
