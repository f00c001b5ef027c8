/**
 * Window width/level (REQ: VIEW-05): presets per body part with their keys, linear and sigmoid VOI, windows from
 * the image's own tags, and the W/L arithmetic the toolbar shows.
 */
import { i18n } from '@/i18n'

export interface WindowPreset {
  id: string
  name: string
  modality?: string | null
  window_center: number
  window_width: number
  key?: string | null
}

export type VoiFunction = 'LINEAR' | 'SIGMOID'

/** The same built-in presets the server registers (engine/settings/registry.py "viewer.presets"). */
export const DEFAULT_PRESETS: WindowPreset[] = [
  { id: 'lung', get name() { return i18n.global.t('viewer.preset.lung') }, modality: 'CT', window_center: -600, window_width: 1500, key: '1' },
  { id: 'mediastinum', get name() { return i18n.global.t('viewer.preset.mediastinum') }, modality: 'CT', window_center: 40, window_width: 400, key: '2' },
  { id: 'bone', get name() { return i18n.global.t('viewer.preset.bone') }, modality: 'CT', window_center: 400, window_width: 1800, key: '3' },
  { id: 'brain', get name() { return i18n.global.t('viewer.preset.brain') }, modality: 'CT', window_center: 40, window_width: 80, key: '4' },
  { id: 'abdomen', get name() { return i18n.global.t('viewer.preset.abdomen') }, modality: 'CT', window_center: 50, window_width: 350, key: '5' },
]

/** The presets that apply to a modality (no modality on a preset = every modality). */
export function presetsFor(presets: WindowPreset[], modality: string): WindowPreset[] {
  return presets.filter((p) => !p.modality || p.modality === modality)
}

/**
 * The preset a digit key selects for this modality: the one whose `key` is that digit, else (no preset claims the
 * digit) the N-th preset of the modality.
 */
export function presetForKey(presets: WindowPreset[], modality: string, digit: string): WindowPreset | null {
  const list = presetsFor(presets, modality)
  const byKey = list.find((p) => p.key === digit)
  if (byKey) return byKey
  const n = Number(digit)
  if (!Number.isInteger(n) || n < 1) return null
  const unkeyed = list.filter((p) => !p.key)
  return unkeyed[n - 1] ?? null
}

export interface VoiRange {
  lower: number
  upper: number
}

export function toRange(center: number, width: number): VoiRange {
  const w = Math.max(1, width)
  return { lower: center - w / 2, upper: center + w / 2 }
}

export function toWindow(r: VoiRange): { center: number; width: number } {
  return { center: (r.lower + r.upper) / 2, width: r.upper - r.lower }
}

/** The VOI output of a sigmoid window (PS3.3 C.11.2.1.3.1), 0..1 — what the display draws for value x. */
export function sigmoid(x: number, center: number, width: number): number {
  return 1 / (1 + Math.exp((-4 * (x - center)) / Math.max(1, width)))
}

/** The VOI output of a linear window (PS3.3 C.11.2.1.2.1), 0..1. */
export function linear(x: number, center: number, width: number): number {
  const c = center - 0.5
  const w = Math.max(1, width) - 1
  if (x <= c - w / 2) return 0
  if (x > c + w / 2) return 1
  return (x - c) / w + 0.5
}

/**
 * Whether a viewport draws its image inverted: MONOCHROME1 shows low values bright (PS3.3 C.7.6.3.1.2), so its
 * normal display is Cornerstone's inverted one, and the user's 反相 flips whatever the image's own display is.
 */
export function shownInvert(userInvert: boolean, photometric: string | undefined): boolean {
  return (photometric === 'MONOCHROME1') !== userInvert
}

/** Pseudo-colour maps offered (VIEW-05): vtk.js colormap preset names (Cornerstone resolves them) with Chinese labels. */
export const COLORMAPS: readonly { name: string | null; label: string }[] = [
  { name: null, get label() { return i18n.global.t('viewer.colormap.gray') } },
  { name: 'hsv', get label() { return i18n.global.t('viewer.colormap.hsv') } },
  { name: 'jet', get label() { return i18n.global.t('viewer.colormap.jet') } },
  { name: 'Black-Body Radiation', get label() { return i18n.global.t('viewer.colormap.hot') } },
  { name: 'Inferno (matplotlib)', get label() { return i18n.global.t('viewer.colormap.inferno') } },
  { name: 'Cool to Warm', get label() { return i18n.global.t('viewer.colormap.coolWarm') } },
]

/** Format a window for the corner text, e.g. "窗宽 400 窗位 40". */
export function formatWindow(center: number, width: number): string {
  return i18n.global.t('viewer.window', { width: Math.round(width), center: Math.round(center) })
}
