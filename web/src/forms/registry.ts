/**
 * Element Plus renderers for JSON Forms, each registered with a rank tester.
 * The highest rank wins; JSON Forms shows its "No applicable renderer" box
 * when every tester answers -1.
 *
 * | renderer | rank | picks |
 * | --- | --- | --- |
 * | text | 1 | `type: string` |
 * | textarea | 2 | string with ui option `multi: true` or `format: "textarea"` |
 * | number | 1 | `type: number` / `integer` |
 * | select | 2 | `enum`, or `oneOf` of `{const, title}` |
 * | radio | 3 | an enum / oneOf with ≤ 3 choices, or ui option `format: "radio"` (not with `format: "select"`) |
 * | date | 2 | `format: date` / `date-time` (or ui option `format`) |
 * | checkbox | 1 | `type: boolean` (ui option `toggle: true` → switch) |
 * | array table | 3 | array of objects or of plain values |
 * | layouts | 1 | `VerticalLayout`, `HorizontalLayout`, `Group`, `Label` |
 */
import {
  and,
  formatIs,
  isBooleanControl,
  isDateControl,
  isDateTimeControl,
  isEnumControl,
  isIntegerControl,
  isMultiLineControl,
  isNumberControl,
  isObjectArrayControl,
  isOneOfEnumControl,
  isPrimitiveArrayControl,
  isStringControl,
  not,
  optionIs,
  or,
  rankWith,
  schemaMatches,
  uiTypeIs,
  type JsonFormsRendererRegistryEntry,
  type RankedTester,
} from '@jsonforms/core'
import { markRaw, type Component } from 'vue'
import { choiceCount } from './schemaUtil'
import TextControl from './renderers/TextControl.vue'
import TextareaControl from './renderers/TextareaControl.vue'
import NumberControl from './renderers/NumberControl.vue'
import EnumControl from './renderers/EnumControl.vue'
import OneOfEnumControl from './renderers/OneOfEnumControl.vue'
import RadioControl from './renderers/RadioControl.vue'
import DateControl from './renderers/DateControl.vue'
import BooleanControl from './renderers/BooleanControl.vue'
import ArrayTableControl from './renderers/ArrayTableControl.vue'
import VerticalLayout from './renderers/VerticalLayout.vue'
import HorizontalLayout from './renderers/HorizontalLayout.vue'
import GroupLayout from './renderers/GroupLayout.vue'
import LabelRenderer from './renderers/LabelRenderer.vue'

/** Largest enum shown as radio buttons without a ui option. */
export const RADIO_MAX_CHOICES = 3

export const textTester: RankedTester = rankWith(1, isStringControl)
export const textareaTester: RankedTester = rankWith(
  2,
  and(isStringControl, or(isMultiLineControl, formatIs('textarea'))),
)
export const numberTester: RankedTester = rankWith(1, or(isNumberControl, isIntegerControl))
export const enumTester: RankedTester = rankWith(2, isEnumControl)
export const oneOfEnumTester: RankedTester = rankWith(2, isOneOfEnumControl)
export const radioTester: RankedTester = rankWith(
  3,
  and(
    or(isEnumControl, isOneOfEnumControl),
    or(
      optionIs('format', 'radio'),
      and(
        not(optionIs('format', 'select')),
        schemaMatches((s) => choiceCount(s) > 0 && choiceCount(s) <= RADIO_MAX_CHOICES),
      ),
    ),
  ),
)
export const dateTester: RankedTester = rankWith(2, or(isDateControl, isDateTimeControl))
export const booleanTester: RankedTester = rankWith(1, isBooleanControl)
export const arrayTableTester: RankedTester = rankWith(3, or(isObjectArrayControl, isPrimitiveArrayControl))
export const verticalLayoutTester: RankedTester = rankWith(1, uiTypeIs('VerticalLayout'))
export const horizontalLayoutTester: RankedTester = rankWith(1, uiTypeIs('HorizontalLayout'))
export const groupTester: RankedTester = rankWith(1, uiTypeIs('Group'))
export const labelTester: RankedTester = rankWith(1, uiTypeIs('Label'))

const entry = (name: string, tester: RankedTester, renderer: Component) => ({
  name,
  tester,
  renderer: markRaw(renderer),
})

/** Named entries (the name is only for tests and debugging). */
export const namedRenderers = Object.freeze([
  entry('text', textTester, TextControl),
  entry('textarea', textareaTester, TextareaControl),
  entry('number', numberTester, NumberControl),
  entry('select', enumTester, EnumControl),
  entry('select-oneof', oneOfEnumTester, OneOfEnumControl),
  entry('radio', radioTester, RadioControl),
  entry('date', dateTester, DateControl),
  entry('checkbox', booleanTester, BooleanControl),
  entry('array-table', arrayTableTester, ArrayTableControl),
  entry('vertical', verticalLayoutTester, VerticalLayout),
  entry('horizontal', horizontalLayoutTester, HorizontalLayout),
  entry('group', groupTester, GroupLayout),
  entry('label', labelTester, LabelRenderer),
])

/** The registry passed to `<JsonForms :renderers>`. */
export const elementRenderers: readonly JsonFormsRendererRegistryEntry[] = Object.freeze(
  namedRenderers.map(({ tester, renderer }) => ({ tester, renderer })),
)
