// The chat app: wires the room list, the open room's timeline, the
// participants, the composer and one WebSocket (/ws/) that follows every room
// the user belongs to. The server is the source of truth: messages are shown
// by seq, each once; after a reconnect the open room resumes from the last
// seq shown and everything else (room list, participants) is reloaded.
// Files go up over plain HTTP into the tray (uploads.js) before the message
// that carries them goes on the socket; the image viewer and the voice
// recorder are loaded the first time they are needed.
import { $, bootData, debounce, h, toast } from './dom.js';
import { initI18n, t, tn, errorText } from './i18n.js';
import { ApiError, get, getAll, post } from './api.js';
import { Connection } from './connection.js';
import { PendingSends } from './pending.js';
import { setupDrawers } from './drawers.js';
import { PhoneLayout } from './phone.js';
import { RoomList } from './rooms.js';
import { Timeline } from './timeline.js';
import { Participants } from './participants.js';
import { TypingIndicator } from './typing.js';
import { Composer } from './composer.js';
import { EmojiPicker } from './emoji.js';
import { Notifier, enableNotifications, notificationsSupported, settings } from './notify.js';
import { confirmSubmit, newDirectDialog, newGroupDialog, profileDialog, publicRoomsDialog, roomInfoDialog } from './dialogs.js';
import { Switcher } from './switcher.js';
import { setupShortcuts, shortcutsDialog } from './shortcuts.js';
import { markAllRead } from './unread.js';
import { messageSummary, roomTitle, senderName, shownName } from './format.js';
import { UploadTray } from './uploads.js';
import { everyMinute, presenceText, reportTimeZone, wentOffline } from './people.js';

const boot = bootData();
initI18n(boot.catalog, boot.lang);
const me = boot.me;
const LAST_ROOM_KEY = 'parley.lastRoom';
/** What the server accepts, for checks before uploading and for the words of its refusals. */
const limits = {
  maxBytes: boot.max_upload_bytes ?? 0,
  maxBytesPerDay: boot.max_upload_bytes_per_day ?? 0,
  maxFiles: boot.max_attachments_per_message || 10,
};
const MEMBERSHIP_EVENTS = new Set(['member_joined', 'member_left', 'member_added', 'member_removed', 'ownership_transferred']);

const els = {
  app: $('#app'),
  title: $('#room-title'),
  subtitle: $('#room-subtitle'),
  pill: $('#conn-pill'),
  pillText: $('#conn-text'),
  roomConn: $('#room-conn'),
  chatHead: $('.chat-head'),
  retry: $('#retry-now'),
  empty: $('#empty-state'),
  composer: $('#composer'),
  joinBar: $('#join-bar'),
  readonly: $('#readonly-bar'),
  roomInfo: $('#room-info'),
  notifyToggle: $('#notify-toggle'),
  scrim: $('#scrim'),
};

/** What is known about each room: who is online in it and its newest seq. */
const onlineByRoom = new Map();
/** Unsent text per room, kept while another room is open. */
const drafts = new Map();
const notifier = new Notifier(document.title);

let current = null; // { id, room, member, loading, buffer: [] }
let preview = null; // a /ws/chat/<room>/ connection while reading a public room one is not in
let connectedOnce = false;
const lastReadSent = new Map();

// ------------------------------------------------------------ components

const roomList = new RoomList({
  list: $('#room-list'),
  empty: $('#room-list-empty'),
  search: $('#room-search'),
  onOpen: (id) => openRoom(id),
  isOnline,
  onRender: () => phone.setUnread(roomList.unreadElsewhere(current?.id)),
});

const phone = new PhoneLayout({ back: $('#open-rooms'), badge: $('#back-badge'), onBack: () => closeRoom() });

const timeline = new Timeline({
  scroller: $('#messages'),
  rows: $('#message-rows'),
  pending: $('#pending-rows'),
  status: $('#history-status'),
  jump: $('#jump-latest'),
  jumpCount: $('#jump-count'),
  jumpUnread: $('#jump-unread'),
  onReadable: () => scheduleRead(),
  onLoadOlder: (beforeSeq) => get(`/chat/${current.id}/messages/?before=${beforeSeq}&limit=100`),
  onProfile: (userId) => userId && profileDialog(dialogContext, userId),
  onRetry: (clientId) => pending.retry(clientId),
  onDiscard: (clientId) => pending.discard(clientId),
  onOpenImage: (images, index, opener) => openImages(images, index, opener),
});

const participants = new Participants({
  list: $('#participants'),
  count: $('#participant-count'),
  title: $('#participants-title-text'),
  peer: $('#peer-profile'),
  onProfile: (userId) => profileDialog(dialogContext, userId),
});

const typing = new TypingIndicator($('#typing'));

const composer = new Composer({
  form: els.composer,
  input: $('#composer-input'),
  counter: $('#char-counter'),
  send: $('#send-button'),
  max: boot.max_message_chars || 5000,
  onSend: (text) => send(text),
  onTyping: (isTyping) => current?.member && conn.send({ type: 'typing', room_id: current.id, is_typing: isTyping }),
  hasAttachments: () => tray.state() !== 'none',
});

// For screen readers: what happened to an upload (the tray shows it too).
const announcer = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
$('.composer-area').append(announcer);
function announce(text) {
  announcer.textContent = '';
  requestAnimationFrame(() => {
    announcer.textContent = text;
  });
}

const tray = new UploadTray({
  el: $('#upload-tray'),
  room: () => (current?.member ? current.id : null),
  limits,
  announce,
  // Send was pressed while files were uploading: it goes now that the last one is up.
  onChange: () => {
    if (current && tray.armed === current.id && tray.state() === 'ready') composer.submit();
  },
});

const emoji = new EmojiPicker({ button: $('#emoji-button'), panel: $('#emoji-picker'), onPick: (emoji) => composer.insert(emoji) });

const dialogContext = {
  me,
  openRoom: (id, room) => {
    // What the dialog knows (e.g. the peer of a new direct room) fills the list entry.
    if (room?.my_role) roomList.upsert(room);
    openRoom(id);
  },
  isMember: (id) => Boolean(roomList.get(id)),
  joinRoom: (id) => joinRoom(id),
};

// ------------------------------------------------------------ the connection

const conn = new Connection(() => '/ws/', {
  onFrame: (frame) => onFrame(frame, false),
  onState: (state, seconds) => showConnection(state, seconds),
  onRefused: () => checkSession(),
  // 1008 on /ws/: the session behind the socket ended (logout elsewhere, a
  // password change). checkSession goes to the login page if so; otherwise
  // the socket comes back.
  onClosed: async () => {
    await checkSession();
    setTimeout(() => conn.retryNow(), 1000);
  },
});

function showConnection(state, seconds) {
  els.pill.dataset.state = state;
  const text = {
    connected: t('conn.connected'),
    connecting: t('conn.connecting'),
    reconnecting: t('conn.reconnecting', { s: seconds }),
    offline: t('conn.offline'),
    closed: t('conn.offline'),
  }[state];
  if (els.pillText.textContent !== text) els.pillText.textContent = text;
  // Narrow headers show the words under the room's name instead (see app.css).
  if (els.roomConn.textContent !== text) els.roomConn.textContent = text;
  els.chatHead.dataset.conn = state;
  els.retry.hidden = state !== 'reconnecting' && state !== 'offline';
  const known = state === 'connected';
  if (known !== participants.presenceKnown) {
    participants.setPresenceKnown(known);
    roomList.schedule();
    updateSubtitle();
  }
  if (!known) pending.disconnected();
}

/** Whether the presence shown is current: only while the socket is up. */
function presenceKnown() {
  return conn.state === 'connected';
}

/** Whether a user is online in any room we follow; null while that is not known. */
function isOnline(userId) {
  return presenceKnown() ? [...onlineByRoom.values()].some((set) => set.has(userId)) : null;
}

/** A refused upgrade: if the session ended, go to the login page. */
async function checkSession() {
  try {
    await get('/auth/me/');
  } catch {
    /* api() redirects on 401; other failures: keep retrying */
  }
}

function onFrame(frame, fromPreview) {
  switch (frame.type) {
    case 'connection_established':
      return fromPreview ? onPreviewEstablished(frame) : onEstablished(frame);
    case 'chat_message':
      return onChatMessage(frame.room_id, frame.message);
    case 'user_joined':
    case 'user_left':
      return onPresence(frame.room_id, frame.user_id, frame.type === 'user_joined', frame.user_profile);
    case 'user_typing':
      if (frame.room_id === current?.id && frame.user_id !== me.id) {
        const person = participants.get(frame.user_id);
        typing.set(frame.user_id, person ? shownName(person) : frame.username, frame.is_typing);
      }
      return;
    case 'read_status_update':
      return onRead(frame);
    case 'room_joined':
      return onRoomJoined(frame.room);
    case 'room_left':
      return onRoomLeft(frame.room_id, frame.reason);
    case 'room_updated':
      return onRoomUpdated(frame.room);
    case 'member_updated':
      return onMemberUpdated(frame);
    case 'error':
      return onError(frame);
    default:
      return undefined;
  }
}

function onEstablished(frame) {
  for (const room of frame.rooms ?? []) {
    onlineByRoom.set(room.room_id, new Set(room.online));
    if (room.room_id === current?.id) current.serverSeq = room.last_seq;
  }
  if (connectedOnce) {
    // Presence, typing and room changes are not replayed: reload them.
    reloadRooms();
    if (current) loadParticipants(current.id);
  }
  connectedOnce = true;
  typing.clear();
  if (current) refreshPresence();
  catchUp();
  pending.resendAll();
  scheduleRead();
}

/** Asks the server for what the open room has that the timeline lacks. */
function catchUp() {
  if (!current?.member || current.loading || !conn.isOpen) return;
  const newest = Math.max(current.serverSeq ?? 0, roomList.get(current.id)?.last_seq ?? 0);
  if (newest > timeline.lastSeq) conn.send({ type: 'resume', room_id: current.id, since_seq: timeline.lastSeq });
}

function onChatMessage(roomId, message) {
  if (message.client_id && message.is_own) pending.acknowledged(message.client_id);
  const isCurrent = roomId === current?.id;
  if (isCurrent) {
    if (current.loading) current.buffer.push(message);
    else {
      const before = timeline.lastSeq;
      timeline.add(message);
      if (before && message.seq > before + 1) catchUp();
    }
    if (message.message_type === 'system' && MEMBERSHIP_EVENTS.has(message.event?.event)) reloadParticipants();
  }
  const seen = isCurrent && !notifier.hidden && timeline.seesLatest;
  const countable = !message.is_own && message.message_type !== 'system';
  roomList.onMessage(roomId, message, countable && !seen);
  if (countable && !seen) {
    const room = roomList.get(roomId);
    notifier.message({
      title: t('notify.title', { name: senderName(message), room: room ? roomTitle(room) : roomId }),
      body: messageSummary(message),
      icon: message.sender_avatar,
      tag: roomId,
      onClick: () => openRoom(roomId),
    });
  }
  if (isCurrent) scheduleRead();
  updateTitle();
}

function onPresence(roomId, userId, online, profile) {
  const set = onlineByRoom.get(roomId) ?? new Set();
  if (online) set.add(userId);
  else set.delete(userId);
  onlineByRoom.set(roomId, set);
  // The room list's peer of a direct room follows presence too (the header reads it).
  const listed = roomList.get(roomId);
  if (listed?.peer?.id === userId) listed.peer = online ? { ...listed.peer, ...(profile ?? {}), is_online: true } : wentOffline(profile ?? {}, listed.peer);
  if (roomId === current?.id) {
    participants.setOnline(userId, online, profile);
    if (!online) typing.set(userId, '', false);
    updateSubtitle();
  }
  roomList.schedule();
}

function refreshPresence() {
  const set = onlineByRoom.get(current.id);
  if (!set) return;
  for (const person of participants.people.values()) participants.setOnline(person.id, set.has(person.id));
  updateSubtitle();
}

function onRead(frame) {
  if (frame.user_id === me.id) {
    roomList.markRead(frame.room_id, frame.up_to_seq);
    updateTitle();
  } else if (frame.room_id === current?.id && current.room?.room_type === 'direct') {
    timeline.markPeerRead(frame.up_to_seq);
  }
}

function onRoomJoined(room) {
  roomList.upsert(room);
  reloadRooms();
  if (room.room_id === current?.id && !current.member) openRoom(room.room_id, { keepUrl: true });
}

function onRoomLeft(roomId, reason) {
  roomList.remove(roomId);
  onlineByRoom.delete(roomId);
  if (roomId !== current?.id) return;
  toast(reason === 'removed' ? t('room.removed') : t('room.left'));
  if (current.room?.room_type === 'public') openRoom(roomId, { keepUrl: true });
  else closeRoom();
}

function onRoomUpdated(room) {
  if (roomList.get(room.room_id)) roomList.upsert(room);
  if (room.room_id === current?.id) {
    current.room = { ...current.room, ...room };
    renderHeader();
    updateComposerState();
  }
}

function onMemberUpdated(frame) {
  if (frame.room_id !== current?.id) return;
  participants.update(frame.user_id, { role: frame.role, muted_until: frame.muted_until });
  if (frame.user_id === me.id) {
    current.me = { ...(current.me ?? {}), role: frame.role, muted_until: frame.muted_until };
    const listed = roomList.get(frame.room_id);
    if (listed) listed.my_role = frame.role;
    updateComposerState();
  }
}

function onError(frame) {
  const entry = frame.client_id ? pending.fail(frame.client_id, frame) : undefined;
  if (!entry) toast(errorText(frame.code, frame.message));
}

// ------------------------------------------------------------ sending

const pending = new PendingSends({
  send: (frame) => conn.isOpen && conn.send(frame),
  isOpen: () => conn.isOpen,
  userId: me.id,
  onChange: (clientId, entry) => {
    if (!entry) timeline.removePending(clientId);
    else if (entry.room === current?.id && !current.loading) timeline.setPendingState(clientId, entry.state, failureText(entry));
  },
});

/** Why an outbox message failed, in words (nothing for an unanswered one). */
function failureText(entry) {
  const error = entry.error;
  if (entry.state !== 'failed' || !error || error.code === 'timeout') return '';
  return errorText(error.code, error.message);
}

/**
 * The composer's Send: the text with the tray's files. While files are still
 * uploading it waits for them (false: the text stays in the box); a failed
 * upload must be retried or removed first.
 */
function send(content) {
  if (!current?.member) return false;
  const files = tray.state();
  if (files === 'busy') {
    tray.arm(current.id);
    return false;
  }
  if (files === 'error') {
    toast(t('attach.fix_errors'));
    return false;
  }
  const attachments = files === 'ready' ? tray.take() : [];
  if (!content && !attachments.length) return false;
  queueMessage(current.id, content, attachments);
  drafts.delete(current.id);
  return true;
}

// The server's echo arrives in a later task, so showing a message just after
// sending it is never too late.
function queueMessage(roomId, content, attachments = []) {
  const clientId = pending.add(roomId, content, attachments);
  if (roomId === current?.id && !current.loading) timeline.addPending(clientId, content, pending.get(clientId)?.state ?? 'waiting', '', true, attachments);
}

/** Tells the server what the user has seen of the open room. */
function sendRead() {
  if (!current?.member || current.loading || notifier.hidden || !timeline.seesLatest) return;
  const seq = timeline.lastSeq;
  if (seq <= (lastReadSent.get(current.id) ?? 0)) return;
  if (conn.send({ type: 'read', room_id: current.id, up_to_seq: seq })) {
    lastReadSent.set(current.id, seq);
    roomList.markRead(current.id, seq);
    updateTitle();
  }
}

const scheduleRead = debounce(sendRead, 250);

function updateTitle() {
  notifier.setUnread(roomList.totalUnread());
}

// ------------------------------------------------------------ rooms

async function reloadRooms() {
  try {
    // Paginated: a user in thousands of rooms gets them all, a page at a time.
    const rooms = await getAll('/chat/rooms/');
    roomList.setRooms(rooms);
    updateTitle();
    const listed = current && roomList.get(current.id);
    if (listed) {
      current.room = { ...current.room, ...listed };
      renderHeader();
      if (!current.loading) catchUp();
    }
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) toast(error.message);
  }
}

async function joinRoom(roomId) {
  await post(`/chat/${roomId}/join/`);
  await reloadRooms();
  openRoom(roomId);
}

function closeRoom() {
  if (current) {
    // Leaving at once (a tap on back) still marks what was seen as read.
    sendRead();
    drafts.set(current.id, $('#composer-input').value);
  }
  stopPreview();
  leaveComposer();
  current = null;
  els.app.classList.add('no-room');
  timeline.close();
  participants.clear();
  typing.clear();
  els.title.textContent = t('app.title');
  setSubtitle([]);
  els.empty.hidden = false;
  els.composer.hidden = true;
  els.joinBar.hidden = true;
  els.readonly.hidden = true;
  els.roomInfo.disabled = true;
  roomList.setActive(null);
  history.replaceState(phone.listState(), '', '/');
}

async function openRoom(roomId, { keepUrl = false, fromHistory = false } = {}) {
  if (current && current.id !== roomId) {
    sendRead();
    drafts.set(current.id, $('#composer-input').value);
  }
  stopPreview();
  closeDrawers();
  if (current?.id !== roomId) leaveComposer();
  const listed = roomList.get(roomId);
  current = { id: roomId, room: listed ?? null, member: Boolean(listed), loading: true, buffer: [], me: null };
  const opening = current;
  els.app.classList.remove('no-room');
  roomList.setActive(roomId);
  localStorage.setItem(LAST_ROOM_KEY, roomId);
  const path = `/tools/chat/enhanced/${encodeURIComponent(roomId)}/`;
  if (!keepUrl && !fromHistory && location.pathname !== path) history.pushState(phone.stateFor(roomId), '', path);
  else if (keepUrl && location.pathname !== path) history.replaceState({ room: roomId, depth: history.state?.depth ?? null }, '', path);
  els.empty.hidden = true;
  timeline.close();
  timeline.showSkeleton();
  typing.clear();
  composer.reset();
  $('#composer-input').value = drafts.get(roomId) ?? '';
  renderHeader();
  updateComposerState();

  const unread = listed?.unread ?? 0;
  const limit = Math.min(200, Math.max(50, unread + 20));
  let page;
  let room;
  try {
    [room, page] = await Promise.all([get(`/chat/${roomId}/`), get(`/chat/${roomId}/messages/?limit=${limit}`)]);
  } catch (error) {
    if (current !== opening) return;
    toast(error.message);
    if (error.status === 404 || error.status === 403) closeRoom();
    else timeline.showLoadFailed();
    return;
  }
  if (current !== opening) return;
  current.room = { ...(listed ?? {}), ...room };
  current.member = Boolean(room.my_role);
  timeline.reset(current.room, {
    messages: page.messages,
    hasMore: page.has_more,
    lastReadSeq: room.last_read_seq ?? listed?.last_read_seq ?? 0,
    unreadCount: unread,
    me,
  });
  current.loading = false;
  for (const message of current.buffer) timeline.add(message);
  current.buffer = [];
  for (const [clientId, entry] of pending.inRoom(roomId)) {
    timeline.addPending(clientId, entry.content, entry.state, failureText(entry), false, entry.attachments ?? []);
  }
  renderHeader();
  await loadParticipants(roomId);
  if (current !== opening) return;
  updateComposerState();
  if (current.member) catchUp();
  else startPreview(roomId);
  scheduleRead();
}

function renderHeader() {
  const room = current?.room;
  els.title.textContent = room ? roomTitle(room) : current?.id ?? t('app.title');
  els.roomInfo.disabled = !room;
  document.title = room ? `${roomTitle(room)} · Parley` : 'Parley';
  notifier.baseTitle = document.title;
  updateTitle();
  updateSubtitle();
}

function updateSubtitle() {
  const room = current?.room;
  if (!room) {
    setSubtitle([]);
    return;
  }
  const kind = t(`room.kind_${room.room_type}`);
  const known = presenceKnown();
  if (room.room_type === 'direct') {
    // "online", else "last seen 5 minutes ago" (kept fresh by the minute timer); while
    // disconnected, not known.
    const peer = directPeer();
    if (known && peer) setSubtitle([presenceText(peer)]);
    else setSubtitle([], kind);
    return;
  }
  const total = participants.people.size || room.member_count || 0;
  const online = [...participants.people.values()].filter((p) => p.is_online).length;
  // Presence while disconnected is not current: the count of members only.
  setSubtitle((known ? tn('room.members_online', total, { online }) : tn('room.members', total)).split(' · '), kind);
}

/**
 * The subtitle as parts after the room's kind, each kept whole: when the line
 * is too narrow the last parts go (at a " · "), never half a word, and a
 * narrow header leaves out the kind (see .room-subtitle).
 */
function setSubtitle(parts, kind = '') {
  const shown = parts.filter(Boolean);
  const text = [kind, ...shown].filter(Boolean).join(' · ');
  if (els.subtitle.title === text) return;
  els.subtitle.title = text;
  els.subtitle.replaceChildren(
    ...(kind ? [h('span', { class: 'part kind' }, kind)] : []),
    ...shown.map((part) => h('span', { class: 'part' }, part)),
  );
}

/** The other member of the open direct room, as fresh as presence has it. */
function directPeer() {
  const room = current?.room;
  if (room?.room_type !== 'direct') return null;
  const id = room.peer?.id ?? [...participants.people.keys()].find((userId) => userId !== me.id);
  const known = participants.get(id);
  if (known) return known;
  if (!room.peer) return null;
  return { ...room.peer, is_online: Boolean(onlineByRoom.get(room.room_id)?.has(room.peer.id)) };
}

function updateComposerState() {
  const room = current?.room;
  const mine = current?.me;
  const muted = mine?.muted_until && Date.parse(mine.muted_until) > Date.now();
  const archived = room?.is_archived;
  const member = current?.member;
  els.joinBar.hidden = member || !room || room.room_type !== 'public' || archived;
  els.composer.hidden = !member || archived || muted;
  // Someone reading an archived public room learns why there is no Join.
  const archivedPreview = !member && room?.room_type === 'public' && archived;
  els.readonly.hidden = !((member && (archived || muted)) || archivedPreview);
  els.readonly.textContent = archivedPreview ? t('keys.archived_preview') : archived ? t('room.archived') : muted ? t('room.muted') : '';
  const enabled = Boolean(member && !archived && !muted);
  composer.setEnabled(enabled);
  $('#attach-button').disabled = !enabled;
  $('#record-button').disabled = !enabled;
  // The tray shows the open room's files (another room keeps its own).
  tray.sync();
}

async function loadParticipants(roomId) {
  try {
    const data = await get(`/chat/${roomId}/participants/`);
    if (current?.id !== roomId) return;
    const direct = current.room?.room_type === 'direct';
    const peer = direct ? data.participants.find((p) => p.id !== me.id) : null;
    participants.set(data.participants, peer?.id ?? null);
    current.me = data.participants.find((p) => p.id === me.id) ?? null;
    const set = new Set(data.participants.filter((p) => p.is_online).map((p) => p.id));
    onlineByRoom.set(roomId, set);
    updateSubtitle();
    updateComposerState();
  } catch (error) {
    if (current?.id === roomId) toast(error.message);
  }
}

const reloadParticipants = debounce(() => current && loadParticipants(current.id), 300);

// A public room read without being a member: its own socket, from the last seq shown.
function startPreview(roomId) {
  preview = new Connection(() => `/ws/chat/${encodeURIComponent(roomId)}/?since_seq=${timeline.lastSeq}`, {
    onFrame: (frame) => onFrame(frame.room_id ? frame : { ...frame, room_id: roomId }, true),
    onState: () => {},
  });
  preview.start();
}

function onPreviewEstablished(frame) {
  if (frame.room_id === current?.id) onlineByRoom.set(frame.room_id, new Set(frame.online));
  refreshPresence();
}

function stopPreview() {
  preview?.stop();
  preview = null;
}

// ------------------------------------------------------------ attachments: files, pictures, voice

const attachInput = $('#attach-input');
const cameraInput = $('#camera-input');
const attachButton = $('#attach-button');
const attachMenu = $('#attach-menu');
/** A phone or tablet: the attach button offers the camera as well as files. */
const coarsePointer = window.matchMedia('(pointer: coarse)');
let recorder = null;

function canAttach() {
  return Boolean(current?.member && !els.composer.hidden && !$('#composer-input').disabled);
}

function addFiles(files) {
  if (!files.length || !canAttach()) return;
  tray.add(files);
  $('#composer-input').focus();
}

/** Leaving a room: a recording in progress is dropped, a pending "send when uploaded" forgotten. */
function leaveComposer() {
  recorder?.cancel();
  tray.disarm();
}

function setAttachMenu(open, returnFocus = false) {
  attachMenu.hidden = !open;
  attachButton.setAttribute('aria-expanded', String(open));
  if (open) attachMenu.querySelector('[role="menuitem"]').focus();
  else if (returnFocus) attachButton.focus();
}

attachButton.addEventListener('click', () => {
  if (!coarsePointer.matches) {
    attachInput.click();
    return;
  }
  attachButton.setAttribute('aria-haspopup', 'menu');
  setAttachMenu(attachMenu.hidden);
});
$('#attach-files').addEventListener('click', () => {
  setAttachMenu(false);
  attachInput.click();
});
$('#attach-camera').addEventListener('click', () => {
  setAttachMenu(false);
  cameraInput.click();
});
attachMenu.addEventListener('keydown', (event) => {
  const items = [...attachMenu.querySelectorAll('[role="menuitem"]')];
  const here = items.indexOf(document.activeElement);
  if (event.key === 'Escape') {
    event.preventDefault();
    setAttachMenu(false, true);
  } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    event.preventDefault();
    items[(here + (event.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length].focus();
  } else if (event.key === 'Tab') {
    setAttachMenu(false);
  }
});
document.addEventListener('click', (event) => {
  if (!attachMenu.hidden && !event.target.closest('.attach-anchor')) setAttachMenu(false);
});
for (const input of [attachInput, cameraInput]) {
  input.addEventListener('change', () => {
    addFiles([...input.files]);
    input.value = '';
  });
}
// A picture pasted into the message box (a screenshot); pasted text stays text.
$('#composer-input').addEventListener('paste', (event) => {
  const files = [...(event.clipboardData?.files ?? [])];
  if (!files.length) return;
  event.preventDefault();
  addFiles(files);
});

// Files dropped anywhere on the conversation.
const dropOverlay = $('#drop-overlay');
let dragDepth = 0;
const dragsFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
const chatEl = $('#chat');
chatEl.addEventListener('dragenter', (event) => {
  if (!dragsFiles(event) || !canAttach()) return;
  event.preventDefault();
  dragDepth += 1;
  dropOverlay.hidden = false;
});
chatEl.addEventListener('dragover', (event) => {
  if (!dragsFiles(event) || !canAttach()) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = 'copy';
});
chatEl.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) dropOverlay.hidden = true;
});
chatEl.addEventListener('drop', (event) => {
  if (!dragsFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  dropOverlay.hidden = true;
  addFiles([...event.dataTransfer.files]);
});
// A file dropped beside the conversation is not opened in place of the app.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (event) => {
    if (dragsFiles(event) && !event.defaultPrevented) event.preventDefault();
  });
}

async function openImages(images, index, opener) {
  const { openLightbox } = await import('./lightbox.js');
  openLightbox(images, index, opener);
}

$('#record-button').addEventListener('click', async () => {
  if (!canAttach()) return;
  const room = current.id;
  if (!recorder) {
    const { VoiceRecorder } = await import('./recorder.js');
    recorder ??= new VoiceRecorder({
      panel: $('#recorder'),
      form: els.composer,
      limits,
      maxSeconds: boot.max_voice_seconds || 300,
      onSend: (roomId, attachment) => queueMessage(roomId, '', [attachment]),
    });
  }
  if (current?.id === room) recorder.start(room);
});
$('#recorder').addEventListener('recorder-closed', (event) => {
  if (event.detail?.hadFocus && !els.composer.hidden) $('#composer-input').focus();
});

// ------------------------------------------------------------ layout: drawers, toggles

const { closeDrawers } = setupDrawers({ app: els.app, scrim: els.scrim });

// ------------------------------------------------------------ keyboard

const switcher = new Switcher({
  rooms: () => roomList.sorted(),
  me,
  openRoom: dialogContext.openRoom,
  isOnline,
});
setupShortcuts({
  switcher,
  emoji,
  roomIds: () => roomList.shownIds(),
  unreadIds: () => new Set(roomList.sorted().filter((room) => room.unread > 0).map((room) => room.room_id)),
  currentId: () => current?.id ?? null,
  openRoom: (id) => openRoom(id),
});
$('#show-shortcuts').addEventListener('click', () => shortcutsDialog());

// ------------------------------------------------------------ buttons

$('#new-group').addEventListener('click', () => newGroupDialog(dialogContext));
$('#new-direct').addEventListener('click', () => newDirectDialog(dialogContext));
$('#browse-public').addEventListener('click', () => publicRoomsDialog(dialogContext));
els.roomInfo.addEventListener('click', () => current && roomInfoDialog(dialogContext, current.id));
$('#join-room').addEventListener('click', async () => {
  if (!current) return;
  try {
    await joinRoom(current.id);
  } catch (error) {
    toast(error.message);
  }
});
els.retry.addEventListener('click', () => conn.retryNow());
$('#mark-all-read').addEventListener('click', async () => {
  const unread = roomList.sorted().filter((room) => room.unread > 0);
  if (!unread.length) {
    toast(t('keys.read_all.none'));
    return;
  }
  const failed = await markAllRead(unread, (room) => post(`/chat/${room.room_id}/read/`, { up_to_seq: room.last_seq ?? 0 }), (room) => {
    roomList.markRead(room.room_id, room.last_seq ?? 0);
    lastReadSent.set(room.room_id, Math.max(lastReadSent.get(room.room_id) ?? 0, room.last_seq ?? 0));
  });
  updateTitle();
  toast(failed ? t('keys.read_all.failed', { n: failed }) : t('keys.read_all.done'));
});

function showNotifyState() {
  const on = settings.notify && notificationsSupported() && Notification.permission === 'granted';
  els.notifyToggle.setAttribute('aria-pressed', String(on));
}
els.notifyToggle.addEventListener('click', async () => {
  if (settings.notify) {
    settings.notify = false;
    toast(t('notify.disabled'));
  } else {
    const permission = await enableNotifications();
    toast(permission === 'granted' ? t('notify.enabled') : t('notify.denied'));
  }
  showNotifyState();
});
if (!notificationsSupported()) els.notifyToggle.hidden = true;
showNotifyState();

document.addEventListener('visibilitychange', () => {
  updateTitle();
  if (!notifier.hidden) scheduleRead();
});
window.addEventListener('popstate', () => {
  const match = location.pathname.match(/^\/tools\/chat\/enhanced\/([^/]+)\/?$/);
  if (match) openRoom(decodeURIComponent(match[1]), { fromHistory: true });
  else if (location.pathname === '/' && phone.isPhone) closeRoom();
});
// Logging out asks first; unsent messages stay in this browser only for the
// user who wrote them, so they go with the logout (not when it is cancelled).
confirmSubmit(
  $('form[action="/logout"]'),
  { title: t('keys.confirm.logout_title'), body: t('keys.confirm.logout_body'), confirmLabel: t('nav.logout'), danger: true },
  () => pending.clearStore(),
);

// ------------------------------------------------------------ start

// "last seen 5 minutes ago" and the other person's local time move on.
everyMinute(() => {
  if (current?.room?.room_type !== 'direct') return;
  updateSubtitle();
  participants.schedule();
});

async function start() {
  conn.start();
  // A phone starts at the room list unless the URL names a room.
  if (phone.isPhone && !boot.room) closeRoom();
  reportTimeZone(me);
  await reloadRooms();
  if (phone.isPhone && !boot.room) return;
  const wanted = boot.room ?? localStorage.getItem(LAST_ROOM_KEY);
  const first = wanted && (roomList.get(wanted) || boot.room) ? wanted : roomList.sorted()[0]?.room_id;
  if (first) openRoom(first, { keepUrl: Boolean(boot.room) || location.pathname === '/' });
  else closeRoom();
}

start();
