/**
 * Soft checks of a report before it is submitted (UX.md R4; issue 17): they warn and the doctor may submit anyway.
 * - 左/右: the 诊断意见 names a side the 影像所见 never names (a 右 in the conclusion that the findings only describe
 *   on the left is the classic slip of a copied template);
 * - more than three differentials on one 诊断意见 line (UX R4: write them as separate lines or narrow them).
 * Empty 影像所见 / 诊断意见 are not here: the form's schema refuses them (hard errors).
 */
export interface LintWarning {
  /** i18n key under `reportLint.` with its parameters. */
  code: 'sideMismatch' | 'sideMissing' | 'tooManyDifferentials'
  params: Record<string, string | number>
}

const SIDES = ['左', '右'] as const
// 左右 / 左、右 / 双侧 name both sides or neither: they are not a side claim.
const BOTH = /左右|右左|左、右|右、左|左及右|右及左|双侧|两侧|双/g

function sidesIn(text: string): Set<string> {
  const plain = text.replace(BOTH, '')
  return new Set(SIDES.filter((s) => plain.includes(s)))
}

const DIFFERENTIAL_SPLIT = /[、，,；;]|或|与|及/

export function lintReport(findings: string, impression: string): LintWarning[] {
  const out: LintWarning[] = []
  const seen = sidesIn(findings)
  for (const side of sidesIn(impression)) {
    if (!seen.has(side)) {
      const other = side === '左' ? '右' : '左'
      out.push(seen.has(other) ? { code: 'sideMismatch', params: { side, other } } : { code: 'sideMissing', params: { side } })
    }
  }
  impression.split('\n').forEach((line, i) => {
    const body = line.replace(/^\s*\d+[.、．)]\s*/, '')
    if (!/可能|待排|考虑|鉴别|不除外|除外/.test(body)) return
    // The alternatives follow 考虑/鉴别/待排 when the line has one ("右肺肿块，考虑肺癌、结核球或错构瘤可能").
    const tail = body.replace(/^.*?(考虑|鉴别诊断|鉴别|待排)/, '')
    const items = tail.split(DIFFERENTIAL_SPLIT).filter((x) => x.trim())
    if (items.length > 3) {
      out.push({ code: 'tooManyDifferentials', params: { line: i + 1, count: items.length } })
    }
  })
  return out
}
