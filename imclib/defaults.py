"""Default device and circuit parameters, in SI units, with their sources.

Every default the package uses lives here, so a reader can check each number against its
source and a sweep can override it in one place.

Sources
-------
* NVSim's sample STT-RAM cell (Dong et al., IEEE TCAD 31(7), 2012; ``SampleCells/STTRAM``):
  R_P = 6 kOhm, R_AP = 12 kOhm (TMR = 100 %) read at 0.25 V.
* Bias dependence of MgO junctions: TMR falls roughly as ``TMR0 / (1 + (V/V_h)^2)`` with
  V_h of a few hundred millivolts (Yuasa et al., Nature Materials 3, 868, 2004; Parkin et
  al., Nature Materials 3, 862, 2004). We take V_h = 0.5 V.
* Read voltages of 0.1-0.2 V keep read disturb and TMR loss low (NVSim sample cell uses 0.25 V).
* Converters: 8-bit SAR ADCs are the common choice in published MTJ/RRAM crossbar macros
  and simulators (NeuroSim's default ADC precision is 5-8 bits; ISAAC, Shafiee et al.,
  ISCA 2016, uses 8-bit ADCs), and 8-bit input DACs (or 8 bit-serial cycles) are standard
  for 8-bit activations. Measured here (notebook 02): with the calibrated ADC range the MNIST
  accuracy is flat from 8 bits up, and falls below it.
* Cell-to-cell resistance variation of a few percent (sigma of log R) is typical of
  production STT-MRAM; read noise and sense-amplifier noise are taken an order smaller.
"""

R_P_OHM = 6.0e3
"""Parallel-state resistance of one junction (ohms), NVSim sample cell."""
TMR0 = 1.0
"""Zero-bias tunnel magnetoresistance (R_AP - R_P) / R_P, NVSim sample cell (100 %)."""
V_HALF_V = 0.5
"""Bias at which the TMR has halved (volts), MgO junctions."""
V_READ_V = 0.1
"""Full-scale read voltage on a row (volts); at 0.1 V a junction keeps 96 % of its TMR."""

N_STATES = 4
"""States per cell in the source study (a two-junction binary-weighted MTJ stack)."""
ARRAY_ROWS = 4
"""Rows of one physical array in the source study."""
ARRAY_COLS = 4
"""Columns of one physical array in the source study."""

PROGRAMMING_SIGMA = 0.03
"""Static cell-to-cell variation: sigma of ln(G) (dimensionless, about 3 % rms)."""
READ_SIGMA = 0.005
"""Per-read conductance noise: relative Gaussian sigma (dimensionless)."""
ADC_BITS = 8
"""Output ADC resolution (bits) of the default periphery (see the sources above)."""
DAC_BITS = 8
"""Input DAC resolution (bits) of the default periphery."""
INPUT_PERCENTILE = 99.9
"""DAC full scale: this percentile of a layer's calibration inputs ``|x|`` (larger inputs clip)."""
ADC_PERCENTILE = 99.99
"""ADC full scale: this percentile of a physical column's calibration partial currents."""

SENSE_NOISE_A = 10e-9
"""Sense-amplifier input-referred current noise per column read (amperes rms)."""
