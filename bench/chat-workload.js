// The conversations of the chats benchmark (bench/chats.js): each chat is a system prompt and
// several earlier user/assistant turns, about 1,100 tokens in all, then new user messages,
// one per turn. The text is made up from word lists by a seeded generator, so every run and
// every target get the same messages. Each chat starts with its own number, so no two chats
// share a prompt prefix beyond the chat template's first tokens: a cache hit can only come
// from the chat's own earlier turns.
//   English (en) suits SmolLM2, Persian (fa) Gemma 3.
'use strict'

/**
 * Earlier user/assistant pairs in a history, and sentences per message: a history of about
 * 1,100 tokens with SmolLM2's tokenizer (en) and Gemma 3's (fa), which spends about 30 tokens
 * on a Persian sentence against 20 on an English one.
 */
const HISTORY_PAIRS = 5
const USER_SENTENCES = { en: 2, fa: 1 }
const ASSISTANT_SENTENCES = { en: 7, fa: 5 }

const WORDS = {
  en: {
    names: ['Ava', 'Ben', 'Chloe', 'Daniel', 'Emma', 'Felix', 'Grace', 'Hugo', 'Iris', 'Jack', 'Kate', 'Liam', 'Maya', 'Noah', 'Olivia', 'Paul'],
    topics: ['a trip to the mountains', 'a small vegetable garden', 'a birthday dinner', 'learning the piano', 'a used bicycle', 'a reading club', 'a kitchen renovation', 'a running plan', 'a science fair project', 'a move to a new city', 'a family photo album', 'a weekend camping trip', 'a home aquarium', 'a neighbourhood market', 'a wooden bookshelf', 'a language course'],
    subjects: ['the old teacher', 'my younger sister', 'our neighbour', 'the hotel manager', 'a friendly baker', 'the city council', 'my best friend', 'the mechanic', 'a tired traveller', 'the museum guide', 'the village doctor', 'our landlord'],
    verbs: ['recommended', 'carefully checked', 'quickly painted', 'happily borrowed', 'quietly repaired', 'proudly showed', 'slowly described', 'bravely tried', 'kindly offered', 'suddenly forgot', 'finally bought', 'patiently explained'],
    objects: ['the blue umbrella', 'a heavy wooden table', 'three fresh loaves of bread', 'the broken garden gate', 'an old map of the river', 'a basket of green apples', 'the list of train times', 'a warm woollen blanket', 'the recipe for lentil soup', 'a box of colourful pencils', 'the spare bicycle wheel', 'a jar of honey'],
    places: ['near the harbour', 'behind the library', 'before the morning rain', 'at the end of the week', 'in the crowded station', 'under the bright lamps', 'after the long meeting', 'on the quiet hill', 'during the winter holiday', 'beside the small bridge', 'in the busy kitchen', 'at the edge of the forest'],
    reasons: ['because the price was fair', 'so that everyone could help', 'since the weather was mild', 'because nobody else had time', 'so the children could watch', 'although it was getting late', 'because it saved a lot of money', 'so nothing would be wasted'],
    asks: ['What should I do first?', 'Is that a good idea?', 'How long will it take?', 'What would you change?', 'Can you give me a short plan?', 'What am I missing?', 'Which option is cheaper?', 'How do I avoid mistakes?'],
  },
  fa: {
    names: ['آرش', 'بهار', 'پریسا', 'تینا', 'جواد', 'حسین', 'خدیجه', 'داریوش', 'رضا', 'زهرا', 'سارا', 'شیرین', 'علی', 'فرهاد', 'کاوه', 'مریم'],
    topics: ['سفر به کوهستان', 'یک باغچهٔ کوچک سبزی', 'جشن تولد خانوادگی', 'یادگیری پیانو', 'خرید دوچرخهٔ دست‌دوم', 'یک باشگاه کتاب‌خوانی', 'بازسازی آشپزخانه', 'برنامهٔ دویدن صبحگاهی', 'پروژهٔ نمایشگاه علمی', 'کوچ به شهری تازه', 'آلبوم عکس خانوادگی', 'اردوی آخر هفته', 'آکواریوم خانگی', 'بازار محله', 'قفسهٔ کتاب چوبی', 'کلاس زبان'],
    subjects: ['معلم پیر', 'خواهر کوچکم', 'همسایهٔ ما', 'مدیر هتل', 'نانوای مهربان', 'شورای شهر', 'بهترین دوستم', 'مکانیک محله', 'مسافر خسته', 'راهنمای موزه', 'پزشک روستا', 'صاحب‌خانهٔ ما'],
    objects: ['چتر آبی', 'میز چوبی سنگین', 'سه نان تازه', 'درِ شکستهٔ باغ', 'نقشهٔ قدیمی رودخانه', 'سبدی از سیب سبز', 'فهرست ساعت قطارها', 'پتوی پشمی گرم', 'دستور پخت آش عدس', 'جعبه‌ای از مدادرنگی', 'چرخ یدک دوچرخه', 'شیشه‌ای عسل'],
    places: ['نزدیک بندر', 'پشت کتابخانه', 'پیش از باران صبح', 'در پایان هفته', 'در ایستگاه شلوغ', 'زیر چراغ‌های روشن', 'بعد از جلسهٔ طولانی', 'روی تپهٔ آرام', 'در تعطیلات زمستان', 'کنار پل کوچک', 'در آشپزخانهٔ شلوغ', 'در حاشیهٔ جنگل'],
    verbs: ['پیشنهاد داد', 'با دقت بررسی کرد', 'به‌سرعت رنگ زد', 'با خوشحالی قرض گرفت', 'بی‌صدا تعمیر کرد', 'با افتخار نشان داد', 'آهسته توصیف کرد', 'شجاعانه امتحان کرد', 'با مهربانی تعارف کرد', 'ناگهان فراموش کرد', 'سرانجام خرید', 'با حوصله توضیح داد'],
    reasons: ['چون قیمتش منصفانه بود', 'تا همه بتوانند کمک کنند', 'چون هوا ملایم بود', 'چون کس دیگری وقت نداشت', 'تا بچه‌ها هم تماشا کنند', 'هرچند دیر شده بود', 'چون خیلی در هزینه صرفه‌جویی می‌کرد', 'تا چیزی هدر نرود'],
    asks: ['اول باید چه کار کنم؟', 'به نظرت فکر خوبی است؟', 'چقدر طول می‌کشد؟', 'تو چه چیزی را تغییر می‌دادی؟', 'می‌توانی یک برنامهٔ کوتاه بدهی؟', 'چه چیزی را از قلم انداخته‌ام؟', 'کدام گزینه ارزان‌تر است؟', 'چطور از اشتباه دوری کنم؟'],
  },
}

/** mulberry32: a small seeded generator, the same numbers on every machine. */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function sentence(w, language, next) {
  const pick = (list) => list[Math.floor(next() * list.length)]
  if (language === 'fa') return `${pick(w.subjects)} ${pick(w.objects)} را ${pick(w.places)} ${pick(w.verbs)}، ${pick(w.reasons)}.`
  const s = `${pick(w.subjects)} ${pick(w.verbs)} ${pick(w.objects)} ${pick(w.places)}, ${pick(w.reasons)}.`
  return s[0].toUpperCase() + s.slice(1)
}

function paragraph(w, language, next, sentences) {
  return Array.from({ length: sentences }, () => sentence(w, language, next)).join(' ')
}

function systemPrompt(chat, language, w) {
  const name = w.names[chat % w.names.length]
  const topic = w.topics[chat % w.topics.length]
  if (language === 'fa') {
    return (
      `گفت‌وگوی شمارهٔ ${chat + 1}. تو دستیار ${name} هستی و به او در برنامه‌ریزی برای ${topic} کمک می‌کنی. ` +
      'همیشه به فارسی روان پاسخ بده، کوتاه و دقیق بنویس، گام‌های عملی پیشنهاد کن و اگر چیزی را نمی‌دانی صادقانه بگو. ' +
      'جزئیاتی را که کاربر پیش‌تر گفته به خاطر بسپار و در پاسخ‌های بعدی از آن‌ها استفاده کن.'
    )
  }
  return (
    `Chat ${chat + 1}. You are the assistant of ${name}, who is planning ${topic}. ` +
    'Answer in plain English, keep replies short and precise, suggest practical steps, and say so honestly when you do not know something. ' +
    'Remember the details the user gave earlier and use them in later answers.'
  )
}

/** The history chat number `chat` starts with: a system prompt and HISTORY_PAIRS earlier turns. */
function history(chat, language) {
  const w = WORDS[language]
  if (!w) throw new Error(`unknown chat language '${language}' (en or fa)`)
  const next = random(1000 + chat)
  const messages = [{ role: 'system', content: systemPrompt(chat, language, w) }]
  for (let i = 0; i < HISTORY_PAIRS; i++) {
    const ask = w.asks[Math.floor(next() * w.asks.length)]
    messages.push({ role: 'user', content: `${paragraph(w, language, next, USER_SENTENCES[language])} ${ask}` })
    messages.push({ role: 'assistant', content: paragraph(w, language, next, ASSISTANT_SENTENCES[language]) })
  }
  return messages
}

/** The new user message of turn `turn` (1-based) of chat `chat`. */
function userMessage(chat, turn, language) {
  const w = WORDS[language]
  const next = random(1_000_000 + chat * 100 + turn)
  const ask = w.asks[Math.floor(next() * w.asks.length)]
  return `${paragraph(w, language, next, USER_SENTENCES[language])} ${ask}`
}

module.exports = { history, userMessage }
