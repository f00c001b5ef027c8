// REQ: VIEW-08 — Cornerstone annotation ⇄ the JSON the server keeps: a round trip gives back the same annotation on
// the same image (its image id rebuilt for this viewer, its statistics re-keyed to it), and the dirty check ignores
// what Cornerstone changes while merely drawing.
import { describe, expect, it } from 'vitest'
import { frameImageId, parseImageId } from '@/viewer/core/dicomweb'
import { type CsAnnotation, fingerprint, fromStored, plain, STATS_KEY, toStored } from '../serialize'

const STUDY = '1.2.3'
const SERIES = '1.2.3.4'
const SOP = '1.2.3.4.5'
const imageId = frameImageId(STUDY, SERIES, SOP, 2, 'M01')

function length(): CsAnnotation {
  return {
    annotationUID: 'a-1',
    highlighted: true,
    invalidated: false,
    isLocked: false,
    isVisible: true,
    metadata: {
      toolName: 'Length',
      referencedImageId: imageId,
      FrameOfReferenceUID: '1.9',
      viewPlaneNormal: [0, 0, -1],
      viewUp: [0, -1, 0],
    },
    data: {
      handles: { points: [new Float32Array([1, 2, 0]), [5, 6, 0]], activeHandleIndex: 1, textBox: { hasMoved: false, worldPosition: [9, 9, 0] } },
      label: '病灶',
      cachedStats: { [`imageId:${imageId}`]: { length: 5.66, unit: 'mm' } },
    },
  }
}

describe('annotation ⇄ JSON', () => {
  it('test_view08_round_trip_keeps_the_annotation_on_its_image', () => {
    const stored = toStored(length(), STUDY, parseImageId)!
    expect(stored).toMatchObject({ annotationUID: 'a-1', toolName: 'Length', seriesUid: SERIES, sopUid: SOP, frame: 2 })
    expect(JSON.stringify(stored)).not.toContain('wadors:') // no host-specific image id is kept
    expect(stored.metadata).not.toHaveProperty('referencedImageId')
    expect(stored.data.cachedStats).toEqual({ [STATS_KEY]: { length: 5.66, unit: 'mm' } })
    expect((stored.data.handles as { points: number[][] }).points).toEqual([[1, 2, 0], [5, 6, 0]]) // typed arrays → arrays
    // through the server as JSON, then back into a viewer whose image ids are built the same way
    const back = fromStored(JSON.parse(JSON.stringify(stored)), (se, sop, f) => frameImageId(STUDY, se, sop, f, 'M01'))
    expect(back.metadata.referencedImageId).toBe(imageId)
    expect(back.metadata.toolName).toBe('Length')
    expect(back.metadata.FrameOfReferenceUID).toBe('1.9')
    expect(back.data.cachedStats).toEqual({ [`imageId:${imageId}`]: { length: 5.66, unit: 'mm' } })
    expect(back.data.label).toBe('病灶')
    expect(back.highlighted).toBe(false)
    // and stored again it is the same record
    expect(toStored(back, STUDY, parseImageId)).toEqual(stored)
  })

  it('test_view08_annotations_of_another_study_or_without_an_image_are_not_saved', () => {
    expect(toStored(length(), '9.9.9', parseImageId)).toBeNull()
    const volume = length()
    delete volume.metadata.referencedImageId
    expect(toStored(volume, STUDY, parseImageId)).toBeNull()
  })

  it('test_view08_dirty_check_ignores_drawing_only_changes', () => {
    const a = toStored(length(), STUDY, parseImageId)!
    const drawn = JSON.parse(JSON.stringify(a))
    drawn.data.cachedStats = { [STATS_KEY]: { length: 5.6600001, unit: 'mm' } }
    drawn.data.handles.activeHandleIndex = null
    drawn.data.handles.textBox.worldPosition = [3, 3, 0]
    drawn.author = { id: 7, name: '张医生' }
    expect(fingerprint([drawn])).toBe(fingerprint([a]))
    const moved = JSON.parse(JSON.stringify(a))
    moved.data.handles.points[1] = [7, 7, 0]
    expect(fingerprint([moved])).not.toBe(fingerprint([a]))
    const textMoved = JSON.parse(JSON.stringify(a))
    textMoved.data.handles.textBox = { hasMoved: true, worldPosition: [3, 3, 0] }
    expect(fingerprint([textMoved])).not.toBe(fingerprint([a]))
  })

  it('test_view08_plain_copies_only_json_values', () => {
    const odd: Record<string, unknown> = { n: NaN, f: () => 1, u: undefined, ok: [1, 'x', true, null] }
    expect(plain(odd)).toEqual({ n: null, ok: [1, 'x', true, null] })
  })
})
