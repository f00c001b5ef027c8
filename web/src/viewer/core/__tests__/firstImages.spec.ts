import { describe, expect, it } from 'vitest'
import { openingImageIds } from '../firstImages'

// issue 16, UX R18: the images the opening layout shows first are asked for before the viewports exist
const series: Record<string, string[]> = {
  ct: ['ct-1', 'ct-2', 'ct-3'],
  dr: ['dr-pa', 'dr-lat'],
}
const of = (uid: string) => series[uid]

describe('openingImageIds', () => {
  it('takes the image each cell opens at', () => {
    expect(openingImageIds([{ seriesUid: 'ct', index: 0 }], of)).toEqual(['ct-1'])
    expect(openingImageIds([{ seriesUid: 'ct', index: 2 }], of)).toEqual(['ct-3'])
  })

  it('asks both images of a two-image study shown side by side, once each', () => {
    const cells = [
      { seriesUid: 'dr', index: 0 },
      { seriesUid: 'dr', index: 1 },
      { seriesUid: 'dr', index: 1 },
    ]
    expect(openingImageIds(cells, of)).toEqual(['dr-pa', 'dr-lat'])
  })

  it('leaves out a series whose metadata is not in yet, and clamps an index past the end', () => {
    const cells = [
      { seriesUid: 'pending', index: 0 },
      { seriesUid: 'ct', index: 9 },
      { seriesUid: 'dr', index: -1 },
    ]
    expect(openingImageIds(cells, of)).toEqual(['ct-3', 'dr-pa'])
  })

  it('asks nothing for an empty layout or an empty series', () => {
    expect(openingImageIds([], of)).toEqual([])
    expect(openingImageIds([{ seriesUid: 'empty', index: 0 }], () => [])).toEqual([])
  })
})
