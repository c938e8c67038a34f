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

# ---- Sensing circuit and writable multi-junction stacks (studies of C6) -------------
TEMPERATURE_K = 300.0
"""Operating temperature of the array and the sense amplifier (kelvin), room temperature."""
SENSE_T_INT_S = 10e-9
"""Integration time of one column read (seconds); noise bandwidth ``df = 1 / (2 t_int)``
= 50 MHz. Assumed: MRAM sense amplifiers resolve one read in a few to a few tens of ns."""
SENSE_R_OHM = 10e3
"""Sense (transimpedance feedback) resistance (ohms): maps the ~10 µA full-scale column
current of a 4-row array to ~0.1 V. Assumed; its thermal noise is ``4 k T df / R_s``."""
RA_OHM_M2 = 10e-12
"""Resistance-area product of the MgO barrier (ohm m^2) = 10 Ohm um^2. Assumed, in the
5-20 Ohm um^2 range of STT-MRAM barriers; with R_P = 6 kOhm the largest junction of a
stack is 46 nm across."""
JC_A_PER_M2 = 3.9e10
"""Intrinsic critical switching current density (A/m^2) = 3.9 MA/cm^2, CoFeB-MgO
perpendicular MTJ of Ikeda et al., Nature Materials 9, 721 (2010); ``I_c = J_c A``."""
JC_SPREAD = 0.05
"""Relative spread (sigma) of a junction's switching current, device to device and pulse
to pulse (dimensionless). Assumed; a write window must clear +-3 sigma of it."""
V_BREAKDOWN_V = 1.5
"""Largest voltage a junction may see while writing (volts). Assumed: MgO barriers of
RA ~ 10 Ohm um^2 break down at roughly 1-2 V; we take 1.5 V. Binary-weighted stacks put
1.06 V (2 junctions), 1.91 V (3) and 3.65 V (4) on their smallest junction at the
defaults, so any limit between 1.1 and 1.9 V gives the same verdicts."""
THERMAL_STABILITY = 60.0
"""Thermal stability factor Delta = E_b / (k T) of every junction (10-year retention)."""
ATTEMPT_TIME_S = 1e-9
"""Attempt time tau_0 of thermally activated switching (seconds), Neel-Brown."""
READ_DISTURB_BUDGET = 1e-9
"""Largest acceptable probability that one read flips a junction (dimensionless). Assumed."""
MIN_JUNCTION_DIAMETER_M = 20e-9
"""Smallest junction diameter we count as manufacturable (meters). Assumed: production
STT-MRAM uses junctions of several tens of nm; sub-20 nm junctions are research devices."""
JUNCTION_SIGMA = 0.03
"""Per-junction variation of R_P: sigma of ln(R_P) of each junction, drawn per cell
(dimensionless), the same 3 % as :data:`PROGRAMMING_SIGMA` but applied junction by junction."""

# ---- cost model (imclib.cost): energy, latency and area to first order -----------------
# Sources
# * ADC: Harpe et al., "A 26 uW 8 bit 10 MS/s asynchronous SAR ADC for low energy radios",
#   IEEE JSSC 46(7), 1585-1595, 2011: 90 nm CMOS, ENOB 7.77 at 10.24 MS/s, 26.3 uW from 1 V,
#   228 um x 240 um including decoupling capacitors; an 8-bit SAR at ~10 MS/s of the kind the
#   Murmann ADC performance survey tabulates (its Walden FOM, P / (2^ENOB f_s) = 11.8 fJ/step,
#   is no longer the energy: imclib.cost.ADC_SURVEY_FOM_J, 2.2 fJ/step, Harpe et al. ISSCC 2013);
#   its conversion time and area are used below.
# * Digital arithmetic: Horowitz, "Computing's energy problem (and what we can do about it)",
#   ISSCC 2014, 45 nm at 0.9 V: 32-bit integer add 0.1 pJ and 137 um^2, 32-bit integer
#   multiply 3.1 pJ and 3495 um^2. Not scaled: digital work is costed at 45 nm.
# * Read time and line capacitance: Jung et al., "A crossbar array of magnetoresistive memory
#   devices for in-memory computing", Nature 601, 211-216, 2022 (28 nm): 13-29 ns column
#   readout, 2.1 fF of line capacitance per cell.
# * Cell footprint: 4 F^2 per junction, the minimum cross-point footprint (2F x 2F), taken
#   at F = 45 nm, the node of the digital energies.

ADC_CONVERSION_TIME_S = 1.0 / 10.24e6
"""Time of one ADC conversion (seconds), 1 / 10.24 MS/s (Harpe et al. 2011)."""
ADC_AREA_M2 = 228e-6 * 240e-6
"""Area of one ADC (square metres), 228 um x 240 um in 90 nm (Harpe et al. 2011)."""
COST_ADC_BITS = 8
"""Bits at which an ideal ADC (``adc_bits=None``) is costed: the resolution of the
Harpe et al. 2011 converter the ADC constants come from."""
T_READ_S = 20e-9
"""Integration time of one array read (seconds), within the 13-29 ns column readout of
Jung et al. 2022."""
LINE_CAPACITANCE_PER_CELL_F = 2.1e-15
"""Row-line capacitance per cell it crosses (farads), Jung et al. 2022."""
E_ADD_J = 0.1e-12
"""Energy of one 32-bit integer addition (joules), 45 nm (Horowitz 2014)."""
E_MULT_J = 3.1e-12
"""Energy of one 32-bit integer multiplication (joules), 45 nm (Horowitz 2014)."""
ADDER_AREA_M2 = 137e-12
"""Area of one 32-bit integer adder (square metres), 45 nm (Horowitz 2014)."""
MULTIPLIER_AREA_M2 = 3495e-12
"""Area of one 32-bit integer multiplier (square metres), 45 nm (Horowitz 2014)."""
FEATURE_SIZE_M = 45e-9
"""Feature size F at which cell and driver footprints are counted (metres)."""
CELL_AREA_F2_PER_JUNCTION = 4.0
"""Footprint of one junction in a cross-point array (F^2): the minimum 2F x 2F cell; a stack
of n junctions side by side takes n times that (an upper bound: stacking them vertically
takes one)."""
ROW_DRIVER_AREA_F2 = 100.0
"""Footprint of one row driver (F^2). An assumption, not a sourced number: a few
minimum-size inverters; its share of the area is reported so a reader can judge it."""
