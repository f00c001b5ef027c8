import { createApp } from 'vue'
import { createPinia } from 'pinia'
import ElementPlus from 'element-plus'
import 'element-plus/dist/index.css'
import './styles.css'

import App from './App.vue'
import { i18n } from './i18n'
import { createAppRouter } from './router'
import { installGuards } from './router/guards'
import { installAuthHandlers } from './router/authRedirect'
import { useAuthStore } from './stores/auth'
import { installPerm } from './utils/perm'
import { installIcons } from './icons'
import './viewer/persist/register'
import './viewer/nextExamExtension'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia)
app.use(i18n)
app.use(ElementPlus)
installIcons(app)
installPerm(app)

const router = createAppRouter()
const store = useAuthStore(pinia)
installAuthHandlers(router, store)
installGuards(router, store, (key) => i18n.global.t(key))
app.use(router)

void router.isReady().then(() => app.mount('#app'))
