// REQ: RPT-03, RPT-07 (issue 17, UX R5): `[A/B]` choices and `___` blanks, tabbed through across the fields.
import { describe, expect, it } from 'vitest'
import {
  adjacentMarker,
  chooseOption,
  countMarkers,
  fillBlank,
  findMarkers,
  insertAt,
  markerAt,
  opensPhraseSearch,
  type ChoiceMarker,
  type BlankMarker,
} from '../markers'

const FIELDS = ['findings', 'impression', 'recommendation'] as const

describe('findMarkers', () => {
  it('finds choices with their options and blanks of three or more underscores, in order', () => {
    const text = '[左/右]肺见___mm结节，边界[清/欠清/不清]。__ 不是空格'
    expect(findMarkers(text)).toEqual([
      { kind: 'choice', start: 0, end: 5, options: ['左', '右'] },
      { kind: 'blank', start: 7, end: 10 },
      { kind: 'choice', start: 17, end: 26, options: ['清', '欠清', '不清'] },
    ])
  })

  it('ignores brackets without a slash and choices across lines; in nested brackets the inner choice counts', () => {
    expect(findMarkers('[注] 见 [1] 与 [a/\nb] 及 [[x/y]]')).toEqual([
      { kind: 'choice', start: 22, end: 27, options: ['x', 'y'] },
    ])
    expect(findMarkers('')).toEqual([])
  })

  it('counts the markers left over several fields', () => {
    expect(countMarkers({ findings: '[a/b] ___', impression: '1. ___', recommendation: null }, FIELDS)).toBe(3)
    expect(countMarkers({ findings: '无', impression: '', recommendation: undefined }, FIELDS)).toBe(0)
  })
})

describe('markerAt', () => {
  const text = '见___，[左/右]侧'
  it('is the marker a selection covers exactly, or the choice a caret stands in', () => {
    expect(markerAt(text, 1, 4)).toEqual({ kind: 'blank', start: 1, end: 4 })
    expect(markerAt(text, 5, 10)).toMatchObject({ kind: 'choice', options: ['左', '右'] })
    expect(markerAt(text, 7, 7)).toMatchObject({ kind: 'choice', start: 5 })
    expect(markerAt(text, 2, 2)).toBeNull()
    expect(markerAt(text, 0, 4)).toBeNull()
  })
})

describe('adjacentMarker', () => {
  const texts = { findings: 'A___B[x/y]C', impression: '无', recommendation: '建议___复查' }

  it('walks forward from the caret through the fields and wraps around', () => {
    let at = { field: 'findings' as const, start: 0, end: 0 }
    const seen: string[] = []
    for (let i = 0; i < 4; i++) {
      const m = adjacentMarker(texts, FIELDS, at, 1)!
      seen.push(`${m.field}:${m.start}-${m.end}`)
      at = { field: m.field as typeof at.field, start: m.start, end: m.end }
    }
    expect(seen).toEqual(['findings:1-4', 'findings:5-10', 'recommendation:2-5', 'findings:1-4'])
  })

  it('walks backward and wraps to the last field', () => {
    const m1 = adjacentMarker(texts, FIELDS, { field: 'findings', start: 1, end: 4 }, -1)!
    expect([m1.field, m1.start]).toEqual(['recommendation', 2])
    const m2 = adjacentMarker(texts, FIELDS, { field: 'recommendation', start: 2, end: 5 }, -1)!
    expect([m2.field, m2.start, m2.kind]).toEqual(['findings', 5, 'choice'])
    const m3 = adjacentMarker(texts, FIELDS, { field: 'impression', start: 1, end: 1 }, -1)!
    expect([m3.field, m3.start]).toEqual(['findings', 5])
  })

  it('a caret at a marker start selects that marker; outside the fields starts from the first or last field', () => {
    expect(adjacentMarker(texts, FIELDS, { field: 'findings', start: 5, end: 5 }, 1)).toMatchObject({ start: 5, end: 10 })
    expect(adjacentMarker(texts, FIELDS, null, 1)).toMatchObject({ field: 'findings', start: 1 })
    expect(adjacentMarker(texts, FIELDS, null, -1)).toMatchObject({ field: 'recommendation', start: 2 })
  })

  it('a single marker is found again from anywhere, including itself; none at all is null', () => {
    const one = { findings: '无', impression: '1. [未见/可见]异常', recommendation: '' }
    expect(adjacentMarker(one, FIELDS, { field: 'impression', start: 3, end: 10 }, 1)).toMatchObject({
      field: 'impression',
      start: 3,
    })
    expect(adjacentMarker(one, FIELDS, { field: 'recommendation', start: 0, end: 0 }, 1)).toMatchObject({ start: 3 })
    expect(adjacentMarker({ findings: 'a', impression: 'b', recommendation: '' }, FIELDS, null, 1)).toBeNull()
  })
})

describe('edits', () => {
  it('chooses an option of a choice by its number and leaves the caret after it', () => {
    const text = '肝[未见/可见]异常'
    const m = findMarkers(text)[0] as ChoiceMarker
    expect(chooseOption(text, m, 2)).toEqual({ text: '肝可见异常', caret: 3 })
    expect(chooseOption(text, m, 1)).toEqual({ text: '肝未见异常', caret: 3 })
    expect(chooseOption(text, m, 3)).toBeNull()
  })

  it('fills a blank and inserts over a selection', () => {
    const text = '大小约___mm'
    const m = findMarkers(text)[0] as BlankMarker
    expect(fillBlank(text, m, '12')).toEqual({ text: '大小约12mm', caret: 5 })
    expect(insertAt('ab', 1, 1, 'X')).toEqual({ text: 'aXb', caret: 2 })
    expect(insertAt('abc', 0, 2, '')).toEqual({ text: 'c', caret: 0 })
  })

  it('opens the phrase search at a line start or after a space only', () => {
    expect(opensPhraseSearch('', 0)).toBe(true)
    expect(opensPhraseSearch('a\n', 2)).toBe(true)
    expect(opensPhraseSearch('a ', 2)).toBe(true)
    expect(opensPhraseSearch('1/2', 1)).toBe(false)
  })
})
