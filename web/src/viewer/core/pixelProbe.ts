/**
 * The test probe's pixel read-out (REQ: VIEW-01; issue 16 "reads every modality"): for image pixel (x, y) of a
 * viewport's current image, the decoded value after the modality LUT and the colour the viewport's canvas shows
 * there. tests/e2e/test_viewer_modalities.py compares both with pydicom's decode of the same file.
 */
import { metaData, type Types } from '@cornerstonejs/core'

export interface PixelReading {
  imageId: string
  rows: number
  columns: number
  photometric: string
  /** The value(s) at (x, y) after the modality LUT: one for greyscale, R, G, B for colour. */
  values: number[]
  voi: { lower: number; upper: number } | null
  invert: boolean
  /** RGBA of the canvas at the pixel's centre. */
  display: number[]
}

/** Scale/offset the stored value when the loader has not already applied the modality LUT (pre-scaling). */
export function modalityValue(raw: number, slope: number | undefined, intercept: number | undefined, preScaled: boolean): number {
  return preScaled ? raw : raw * (slope ?? 1) + (intercept ?? 0)
}

/** Offset of pixel (x, y) in an interleaved pixel buffer of `components` samples a pixel. */
export function pixelOffset(x: number, y: number, columns: number, components: number): number {
  return (y * columns + x) * components
}

/** The photometric interpretation of the viewport's current image (its metadata), '' when none is shown. */
export function photometricOf(vp: Types.IStackViewport): string {
  const id = vp.getCurrentImageId()
  const module = id ? (metaData.get('imagePixelModule', id) as { photometricInterpretation?: string } | undefined) : undefined
  return module?.photometricInterpretation ?? ''
}

export function readPixel(vp: Types.IStackViewport, x: number, y: number): PixelReading | null {
  const image = vp.getCornerstoneImage?.()
  const data = vp.getImageData()
  if (!image || !data) return null
  const pixels = image.getPixelData()
  const components = image.color ? (image.rgba ? 4 : 3) : 1
  const at = pixelOffset(x, y, image.columns, components)
  const preScaled = !!image.preScale?.scaled
  const values = image.color
    ? [pixels[at], pixels[at + 1], pixels[at + 2]]
    : [modalityValue(pixels[at], image.slope, image.intercept, preScaled)]
  const world = data.imageData.indexToWorld?.([x, y, 0]) as Types.Point3 | undefined
  if (!world) return null
  const [cx, cy] = vp.worldToCanvas(world)
  const canvas = vp.getCanvas()
  const ratio = canvas.width / Math.max(1, canvas.clientWidth)
  const ctx = canvas.getContext('2d')
  const display = ctx ? [...ctx.getImageData(Math.floor(cx * ratio), Math.floor(cy * ratio), 1, 1).data] : []
  const props = vp.getProperties()
  return {
    imageId: image.imageId,
    rows: image.rows,
    columns: image.columns,
    photometric: photometricOf(vp),
    values,
    voi: props.voiRange ?? null,
    invert: !!props.invert,
    display,
  }
}
