//! The small dual-stream network that the model, BN-folding and energy tests share (the unit
//! tests include this file by path, the integration tests as a module).

/// JSON of a small DSNN (T = 3, 1x8x8 images, 3 classes): a stem conv-BN-neuron reading the
/// image, a stride-1 block joined by `connect`, max pooling of both streams when `pool`, a
/// downsampling block (4 -> 8 channels, stride 2) with its spike shortcut and AAP projection,
/// and the shared heads on 8 channels. `neuron` is the JSON of every neuron.
pub fn small_dsnn_json(connect: &str, neuron: &str, pool: bool) -> String {
    let branch = |cin: usize, cout: usize, s: usize| {
        format!(
            r#"[{{"type":"conv2d","inChannels":{cin},"outChannels":{cout},"kernelSize":[3,3],"padding":[1,1],"stride":[{s},{s}],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":{cout}}},{neuron},
            {{"type":"conv2d","inChannels":{cout},"outChannels":{cout},"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":{cout}}},{neuron}]"#
        )
    };
    let pool = if pool { r#"{"type":"maxPool2d","kernelSize":[2,2]},"# } else { "" };
    format!(
        r#"{{"timeSteps":3,"inputShape":[1,8,8],"layers":[
            {{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}},{neuron},
            {{"type":"dualStream","head":{{"inFeatures":8,"outFeatures":3}},"stages":[
              {{"type":"block","connect":"{connect}","branch":{}}},
              {pool}
              {{"type":"block","connect":"{connect}","branch":{},
                "shortcut":[{{"type":"conv2d","inChannels":4,"outChannels":8,"kernelSize":[1,1],"stride":[2,2],"bias":false}},
                            {{"type":"batchNorm2d","numFeatures":8}},{neuron}],
                "projection":[{{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"stride":[2,2],"padding":[1,1],"groups":4,"bias":false}},
                              {{"type":"conv2d","inChannels":4,"outChannels":8,"kernelSize":[1,1],"bias":false}},
                              {{"type":"batchNorm2d","numFeatures":8}},{{"type":"relu"}}]}}]}}]}}"#,
        branch(4, 4, 1),
        branch(4, 8, 2)
    )
}
