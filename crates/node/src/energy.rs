//! Energy accounting and BN folding for JS (`dualstream_core::energy`, `dualstream_core::fold`).
use std::sync::{Arc, Mutex};

use dualstream_core::energy::Energies;
use napi_derive::napi;

use crate::{js_error, with_state, NativeModel, Result, State};

#[napi]
impl NativeModel {
    /// Clears the energy counters.
    #[napi]
    pub fn reset_energy(&self) -> Result<()> {
        with_state(&self.shared, "resetEnergy", |s| {
            s.model.reset_energy();
            Ok(())
        })
    }

    /// The energy report (JSON) of everything counted since `resetEnergy`, priced with a
    /// preset (`fp32` default, `fp16`, `int8`) or with custom picojoules per AC and MAC.
    #[napi]
    pub fn energy_report(
        &self,
        preset: Option<String>,
        ac_pj: Option<f64>,
        mac_pj: Option<f64>,
    ) -> Result<String> {
        let energies = match (ac_pj, mac_pj) {
            (Some(ac), Some(mac)) => Energies::custom(ac, mac),
            (None, None) => Energies::preset(preset.as_deref().unwrap_or("fp32")),
            _ => return Err(js_error("ERR_ARG", "energies: give both acPj and macPj, or neither")),
        };
        with_state(&self.shared, "energyReport", |s| {
            let report = s.model.energy_report(&energies?);
            serde_json::to_string(&report)
                .map_err(|e| dualstream_core::Error::state("energyReport", e.to_string()))
        })
    }

    /// A copy with every conv-BN pair folded into one conv with a bias (inference only).
    #[napi]
    pub fn fold_batch_norm(&self) -> Result<NativeModel> {
        let model = with_state(&self.shared, "foldBatchNorm", |s| {
            dualstream_core::fold::fold_batch_norm(&mut s.model)
        })?;
        Ok(NativeModel {
            shared: Arc::new(Mutex::new(Some(State { model, trainer: None, broken: false }))),
        })
    }
}
