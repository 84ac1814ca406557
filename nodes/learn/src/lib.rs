//! Petri's `learn` nodes: datasets, augmentation, U-Nets (2-D, 3-D, anisotropic), training and
//! tiled prediction on candle, with CPU kernels of our own where candle is slow or wrong
//! (see [`ops`]). The device is chosen in one place, [`model::candle_device`].

pub mod augment;
pub mod dataset;
pub mod instances;
pub mod loss;
pub mod model;
pub mod model_io;
pub mod model_nodes;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod predict;
pub mod train;
pub mod unet;
pub mod weights;

use petri_api::{Registry, RegistryError};

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(dataset::DatasetNode)?;
    r.register(augment::Augment)?;
    r.register(model_nodes::UNet2d)?;
    r.register(model_nodes::UNet3d)?;
    r.register(model_nodes::UNet3dAnisotropic)?;
    r.register(train::Train)?;
    r.register(predict::Predict)?;
    r.register(model_io::LoadModel)?;
    r.register(model_io::SaveModel)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nodes_register() {
        let mut r = petri_api::Registry::new();
        super::register(&mut r).unwrap();
        assert_eq!(r.specs().count(), 9);
    }
}
