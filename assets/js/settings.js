// The settings page: profile, avatar, appearance and language, notifications,
// password, API tokens and sessions. The forms are rendered by the server;
// this script sends them to the API and shows the outcome.
import { $, bootData, clear, h } from './dom.js';
import { initI18n, t, errorText, formatDateTime, browserTimeZone } from './i18n.js';
import { del, get, patch, post } from './api.js';
import { enableNotifications, notificationsSupported, settings } from './notify.js';
import { markTimeZoneReported } from './people.js';
import { confirmDialog } from './dialogs.js';
import { cropDialog, loadImage } from './avatar-crop.js';

const boot = bootData();
initI18n(boot.catalog, boot.lang);
let me = boot.me;

function say(el, text, kind = 'ok') {
  el.textContent = text;
  el.className = `form-status ${kind}`;
}

/** Runs an API call for a form, showing success or the translated error. */
async function submitting(form, statusEl, action) {
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  try {
    const message = await action();
    say(statusEl, message ?? t('common.saved'));
  } catch (error) {
    say(statusEl, error.message, 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

// ------------------------------------------------------------ profile
const profileForm = $('#profile-form');
profileForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(profileForm);
  submitting(profileForm, $('#profile-status'), async () => {
    me = await patch('/user/me/profile/', Object.fromEntries(['display_name', 'first_name', 'last_name', 'bio', 'email'].map((k) => [k, data.get(k)])));
  });
});

// ------------------------------------------------------------ avatar
// A picked image opens the crop dialog; its square is what is uploaded.
const avatarInput = $('#avatar-input');
const preview = $('#avatar-preview');
const avatarStatus = $('#avatar-status');
const removeButton = $('#avatar-remove');
const showAvatar = () => {
  preview.src = me.avatar_url;
  // Generated initials have nothing to remove.
  removeButton.hidden = me.avatar_url.includes('?v=g');
};
$('#avatar-form').addEventListener('submit', (event) => event.preventDefault());
avatarInput.addEventListener('change', async () => {
  const file = avatarInput.files?.[0];
  avatarInput.value = '';
  if (!file) return;
  avatarStatus.textContent = '';
  let loaded;
  try {
    loaded = await loadImage(file);
  } catch {
    say(avatarStatus, errorText('unsupported_image'), 'error');
    return;
  }
  const blob = await cropDialog(loaded);
  avatarInput.focus();
  if (!blob) return;
  const body = new FormData();
  body.append('avatar', blob, 'avatar.png');
  say(avatarStatus, t('keys.avatar.uploading'));
  try {
    me = await post('/user/me/avatar/', body);
    showAvatar();
    say(avatarStatus, t('settings.avatar_uploaded'));
  } catch (error) {
    say(avatarStatus, error.message, 'error');
  }
});
removeButton.addEventListener('click', async () => {
  const ok = await confirmDialog({ title: t('keys.avatar.remove_title'), body: t('keys.avatar.remove_body'), confirmLabel: t('keys.avatar.remove'), danger: true });
  if (!ok) return;
  try {
    me = await del('/user/me/avatar/');
    showAvatar();
    say(avatarStatus, t('keys.avatar.removed'));
    avatarInput.focus();
  } catch (error) {
    say(avatarStatus, error.message, 'error');
  }
});

// ------------------------------------------------------------ appearance
const appearanceForm = $('#appearance-form');
const root = document.documentElement;
// Choices show at once; saving keeps them.
appearanceForm.addEventListener('change', (event) => {
  if (event.target.name === 'theme_mode') root.dataset.mode = event.target.value;
  if (event.target.name === 'theme') root.dataset.style = event.target.value;
});
appearanceForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(appearanceForm);
  const language = data.get('language');
  submitting(appearanceForm, $('#appearance-status'), async () => {
    me = await patch('/user/me/profile/', { theme_mode: data.get('theme_mode'), theme: data.get('theme'), language, time_zone: data.get('time_zone') ?? '' });
    // A zone chosen here stays until this browser itself moves to another.
    markTimeZoneReported();
    zoneInput.value = me.time_zone;
    root.dataset.mode = me.theme.mode;
    root.dataset.style = me.theme.style;
    // The page's own words come from the server: reload to see the new language.
    if (language !== boot.lang) location.reload();
  });
});

// The time zone: the browser's zones to pick from, and a button for this browser's.
const zoneInput = $('#time-zone-input');
const zoneButton = $('#time-zone-browser');
const zoneList = $('#time-zone-list');
const here = browserTimeZone();
if (typeof Intl.supportedValuesOf === 'function') {
  zoneList.append(...Intl.supportedValuesOf('timeZone').map((zone) => h('option', { value: zone })));
}
function showZoneButton() {
  zoneButton.hidden = !here || zoneInput.value === here;
  zoneButton.textContent = t('people.time_zone_browser', { zone: here });
}
zoneButton.addEventListener('click', () => {
  zoneInput.value = here;
  showZoneButton();
  zoneInput.focus();
});
zoneInput.addEventListener('input', showZoneButton);
showZoneButton();

// ------------------------------------------------------------ notifications
const desktop = $('#notify-desktop');
const sound = $('#notify-sound');
desktop.checked = settings.notify && notificationsSupported() && Notification.permission === 'granted';
sound.checked = settings.sound;
desktop.disabled = !notificationsSupported();
desktop.addEventListener('change', async () => {
  if (desktop.checked) {
    const permission = await enableNotifications();
    desktop.checked = permission === 'granted';
    say($('#notify-status'), permission === 'granted' ? t('notify.enabled') : t('notify.denied'), permission === 'granted' ? 'ok' : 'error');
  } else {
    settings.notify = false;
    say($('#notify-status'), t('notify.disabled'));
  }
});
sound.addEventListener('change', () => {
  settings.sound = sound.checked;
  say($('#notify-status'), t('common.saved'));
});

// ------------------------------------------------------------ password
const passwordForm = $('#password-form');
passwordForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(passwordForm);
  const status = $('#password-status');
  if (data.get('new_password') !== data.get('new_password2')) {
    say(status, t('error.password_mismatch'), 'error');
    return;
  }
  submitting(passwordForm, status, async () => {
    const revokeTokens = data.get('revoke_tokens') === 'on';
    const result = await post('/auth/password/', {
      current_password: data.get('current_password'),
      new_password: data.get('new_password'),
      revoke_tokens: revokeTokens,
    });
    passwordForm.reset();
    loadSessions();
    if (!revokeTokens) return t('settings.password_changed', { n: result.sessions_revoked });
    loadTokens();
    return t('settings.password_changed_tokens', { n: result.sessions_revoked, tokens: result.tokens_revoked });
  });
});

// ------------------------------------------------------------ API tokens
const tokenForm = $('#token-form');
const when = (time) => (time ? formatDateTime(new Date(time)) : t('settings.never'));

async function loadTokens() {
  const list = $('#token-list');
  try {
    const tokens = await get('/auth/tokens/');
    clear(list).append(
      ...(tokens.length
        ? tokens.map((token) =>
            h(
              'li',
              {},
              h('span', { class: 'item-main' }, h('strong', {}, token.name), h('small', {}, t('settings.token_meta', { created: when(token.created_at), used: when(token.last_used_at) }))),
              h('button', {
                type: 'button',
                class: 'btn small danger',
                'aria-label': `${t('room.invite_revoke')} ${token.name}`,
                onclick: async () => {
                  try {
                    await del(`/auth/tokens/${token.id}/`);
                    say($('#token-status'), t('settings.token_revoked'));
                    loadTokens();
                  } catch (error) {
                    say($('#token-status'), error.message, 'error');
                  }
                },
              }, t('room.invite_revoke')),
            ),
          )
        : [h('li', { class: 'muted' }, t('settings.no_tokens'))]),
    );
  } catch (error) {
    say($('#token-status'), error.message, 'error');
  }
}

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = new FormData(tokenForm).get('name');
  submitting(tokenForm, $('#token-status'), async () => {
    const created = await post('/auth/tokens/', { name });
    $('#new-token-value').textContent = created.token;
    $('#new-token').hidden = false;
    tokenForm.reset();
    loadTokens();
  });
});
$('#copy-token').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText($('#new-token-value').textContent);
    say($('#token-status'), t('common.copied'));
  } catch {
    // No clipboard access: select the text so the user can copy it.
    getSelection()?.selectAllChildren($('#new-token-value'));
  }
});

// ------------------------------------------------------------ sessions
async function loadSessions() {
  const list = $('#session-list');
  try {
    const sessions = await get('/auth/sessions/');
    clear(list).append(
      ...sessions.map((session) =>
        h(
          'li',
          {},
          h(
            'span',
            { class: 'item-main' },
            h('strong', {}, session.current ? t('settings.session_current') : session.user_agent.split(' ')[0] || '—'),
            h('small', {}, t('settings.session_meta', { agent: session.user_agent || '—', ip: session.ip, time: when(session.last_used_at) })),
          ),
        ),
      ),
    );
  } catch (error) {
    say($('#session-status'), error.message, 'error');
  }
}

$('#logout-others').addEventListener('click', async () => {
  try {
    const result = await post('/auth/sessions/logout-others/');
    say($('#session-status'), t('settings.logged_out_others', { n: result.sessions_revoked }));
    loadSessions();
  } catch (error) {
    say($('#session-status'), error.message, 'error');
  }
});

// ------------------------------------------------------------ blocks
async function loadBlocks() {
  const list = $('#block-list');
  try {
    const blocks = await get('/user/me/blocks/');
    clear(list).append(
      ...(blocks.length
        ? blocks.map((block) =>
            h(
              'li',
              { dataset: { blocked: block.username } },
              h(
                'span',
                { class: 'item-main' },
                h('strong', {}, block.display_name || block.username),
                h('small', {}, `@${block.username} · ${t('settings.blocked_since', { time: when(block.blocked_at) })}`),
              ),
              h('button', {
                type: 'button',
                class: 'btn small',
                onclick: async () => {
                  try {
                    await del(`/user/${block.user_id}/block/`);
                    say($('#block-status'), t('dialog.unblocked', { name: block.display_name || block.username }));
                    loadBlocks();
                  } catch (error) {
                    say($('#block-status'), error.message, 'error');
                  }
                },
              }, t('dialog.unblock')),
            ),
          )
        : [h('li', { class: 'muted' }, t('settings.no_blocks'))]),
    );
  } catch (error) {
    say($('#block-status'), error.message, 'error');
  }
}

loadTokens();
loadSessions();
loadBlocks();
