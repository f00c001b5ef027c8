import type { App } from 'vue'
import {
  CircleCheck,
  Collection,
  Connection,
  Delete,
  Document,
  Download,
  Files,
  HomeFilled,
  List,
  Lock,
  Monitor,
  Picture,
  Plus,
  QuestionFilled,
  Refresh,
  Search,
  Stamp,
  SwitchButton,
  Upload,
  User,
  UserFilled,
  Warning,
  ZoomIn,
} from '@element-plus/icons-vue'

/** Icons used by the app (registered globally by name, e.g. for menus.ts). */
export const icons = {
  CircleCheck,
  Collection,
  Connection,
  Delete,
  Document,
  Download,
  Files,
  HomeFilled,
  List,
  Lock,
  Monitor,
  Picture,
  Plus,
  QuestionFilled,
  Refresh,
  Search,
  Stamp,
  SwitchButton,
  Upload,
  User,
  UserFilled,
  Warning,
  ZoomIn,
}

export function installIcons(app: App): void {
  for (const [name, component] of Object.entries(icons)) app.component(name, component)
}
