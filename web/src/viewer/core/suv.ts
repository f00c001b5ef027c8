/**
 * SUV for PET (REQ: VIEW-08 "SUV where the PET tags allow"): the body-weight SUV factor of a PET image from its
 * DICOM tags (no Cornerstone here: ./suvProvider.ts hands it to the image loader as `scalingModule.suvbw`, which
 * then scales the pixels, Bq/ml × factor = SUVbw, and the ROI tools report their statistics in SUV).
 *
 * The factor (the QIBA/PET vendor-neutral recipe, DICOM PS3.3 C.8.9.1 PET Series / Isotope modules):
 *   SUVbw = activity concentration [Bq/ml] × weight [g] / dose at scan start [Bq]
 *   dose at scan start = injected dose × 2^(−(scan start − injection) / half-life)   (DecayCorrection START)
 *   = injected dose                                                                  (DecayCorrection ADMIN)
 * Only when: Modality PT, Units BQML, CorrectedImage lists DECY and ATTN, DecayCorrection START or ADMIN, a patient
 * weight, a radionuclide total dose, half-life and injection time, and a scan start (SeriesDate/Time; an earlier
 * AcquisitionDate/Time wins, as after a vendor rewrites the series time). Otherwise null: no SUV is shown.
 */
import { type DicomJson, tagNumber, tagString, tagValue, tagValues } from './dicomweb'

/** DICOM DA + TM ("20240315", "101500.25") → ms since the epoch (UTC; only differences are used), or null. */
export function dicomDateTime(da: string, tm: string): number | null {
  const d = da.trim().match(/^(\d{4})(\d{2})(\d{2})$/)
  const t = tm.trim().match(/^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$/)
  if (!d || !t) return null
  const frac = t[4] ? Number(t[4]) : 0
  return (
    Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3]), Number(t[1]), Number(t[2] ?? 0), Number(t[3] ?? 0)) +
    Math.round(frac * 1000)
  )
}

/** DICOM DT ("20240315101500.000000", an optional UTC offset ignored) → ms, or null. */
export function dicomDT(dt: string): number | null {
  const m = dt.trim().match(/^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?/)
  return m ? dicomDateTime(m[1], m[2] ?? '000000') : null
}

/** The SUVbw factor (g/Bq: multiply a Bq/ml value by it) of one PET instance, or null when its tags do not allow. */
export function suvbwFactor(ds: DicomJson): number | null {
  if (tagString(ds, '00080060') !== 'PT') return null
  if (tagString(ds, '00541001').toUpperCase() !== 'BQML') return null
  const corrected = tagValues<string>(ds, '00280051').map((v) => String(v).toUpperCase())
  if (!corrected.includes('DECY') || !corrected.includes('ATTN')) return null
  const decay = tagString(ds, '00541102').toUpperCase()
  if (decay !== 'START' && decay !== 'ADMIN') return null
  const weightKg = tagNumber(ds, '00101030')
  const isotope = tagValue<DicomJson>(ds, '00540016')
  const dose = tagNumber(isotope, '00181074')
  const halfLife = tagNumber(isotope, '00181075')
  if (!weightKg || weightKg <= 0 || !dose || dose <= 0 || !halfLife || halfLife <= 0) return null
  let decayed = dose
  if (decay === 'START') {
    const series = dicomDateTime(tagString(ds, '00080021'), tagString(ds, '00080031'))
    const acq = dicomDateTime(tagString(ds, '00080022'), tagString(ds, '00080032'))
    const scan = series !== null && acq !== null ? Math.min(series, acq) : (series ?? acq)
    const injDT = tagString(isotope, '00181078')
    const injected = injDT
      ? dicomDT(injDT)
      : dicomDateTime(tagString(ds, '00080021') || tagString(ds, '00080022'), tagString(isotope, '00181072'))
    if (scan === null || injected === null) return null
    const seconds = (scan - injected) / 1000
    if (seconds < 0) return null
    decayed = dose * Math.pow(2, -seconds / halfLife)
  }
  return (weightKg * 1000) / decayed
}
