// REQ: VIEW-01 — from a case to its study in the viewer
import { describe, expect, it } from 'vitest'
import { rankStudies, viewerUrl } from '../openStudy'

describe('open a case in the viewer', () => {
  it('builds the bookmarkable URL with the institution', () => {
    expect(viewerUrl('1.2.3', 'M01')).toBe('/viewer/studies/1.2.3?institution=M01')
    expect(viewerUrl('1.2.3')).toBe('/viewer/studies/1.2.3')
  })

  it("puts the study of the case's exam accession first, then the newest", () => {
    const s = (uid: string, accession: string, date: string) => ({ studyUid: uid, institution: 'M01', accession, date })
    const ranked = rankStudies([s('old', 'A1', '20250101'), s('new', 'X', '20260101'), s('acc', 'A2', '20240101')], ['A2'])
    expect(ranked.map((r) => r.studyUid)).toEqual(['acc', 'new', 'old'])
  })
})
