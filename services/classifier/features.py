"""Cheap surface signals of a customer message, fed to the classifier next to its embedding.

Sentence embeddings carry the meaning of a message but blur how it is written: shouting,
exclamation runs, swearing, citations of laws, sarcasm markers, off-topic family stories,
terseness. :func:`text_features` turns one message into a fixed vector of such signals, one
column per name in :data:`FEATURE_NAMES`, each bounded in ``[0, 1]`` (log scaling or a cap on
counts) so that a linear model can use them without a scaler.

Words and phrases are matched case-insensitively on whole words: the text is lower-cased,
split on white space and stripped of edge punctuation once, and the words are walked through a
trie of every lexicon phrase built at import, so the cost grows with the text and not with the
size of the lexicons. A handful of precompiled patterns, each tried only where a cheap test
says it can match, cover what words cannot (amounts, units, shouting, masked swear words,
emoji). Only the first :data:`SCAN_CHARS` characters are scanned; the length columns still see
the whole text. No input string makes these functions raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

#: Characters of a message scanned for words and phrases; longer texts are cut for speed.
SCAN_CHARS = 20_000

#: One name per column of :func:`text_features`, in column order.
FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "very_short",
    "long_text",
    "caps_ratio",
    "shouted_words",
    "exclamations",
    "exclaim_runs",
    "questions",
    "ends_with_question",
    "profanity",
    "insults",
    "threats",
    "legal",
    "technical",
    "expertise",
    "money",
    "numbers",
    "demand",
    "stubborn",
    "whine",
    "sarcasm",
    "personal_story",
    "politeness",
    "praise",
    "suggestion",
    "emoji",
    "quotes",
    "repeated_words",
    "repeated_sentences",
    "first_person",
    "second_person",
)

_VERY_SHORT_WORDS = 4
_LONG_WORDS = 120
_LOG_CHARS_CAP = math.log1p(5_000)
_LOG_WORDS_CAP = math.log1p(1_000)

#: Upper-case words that are ordinary acronyms rather than shouting.
_ACRONYMS = frozenset((
    "ATM", "ATMS", "USB", "UK", "USA", "US", "EU", "VAT", "PIN", "PINS", "ID", "IDS", "OK", "TV",
    "GDPR", "SMS", "FAQ", "FAQS", "PDF", "PDFS", "IBAN", "DSL", "BBC", "NHS", "API", "DNS", "URL",
    "ISP", "CEO", "FCA", "ICO", "HMRC", "DVLA", "DWP", "PNR", "ASAP", "PC", "IT", "HR", "CVV",
    "CCTV", "ETA", "DHL", "UPS", "USPS", "GPS", "HDMI", "LED", "LCD", "WIFI", "SIM", "BT", "EE",
    "RSVP", "FYI", "PPI", "MOT", "AM", "PM", "GMT", "BST", "UTC", "CET", "USD", "GBP", "EUR",
    "CAD", "AUD", "JPY", "INR", "NZD", "CHF", "IOS", "ISO", "RFC", "CPU", "RAM", "SSD", "HDD",
    "VPN", "IP", "NFC", "QR", "DVD", "CD", "XL", "XXL", "EV", "KWH", "MPH", "APR", "SWIFT", "BIC",
    "IVR", "CRM", "SLA", "KYC", "AML", "PCI", "DSS", "NI", "MP", "CV", "PS", "UX", "UI", "OS",
    "LTE", "SSL", "TLS", "HTTP", "HTTPS", "DHCP", "SSID", "LAN", "WAN", "ADSL", "FTTP", "FTTC",
    "VDSL", "TSB", "RBS", "HSBC", "ATOL", "ABTA", "ADR", "CCJ", "DSAR", "SAR", "CMA", "ASA", "ONS",
    "IRS", "FTC", "CFPB", "FDIC", "SEC", "DMV", "ZIP", "SSN", "EIN", "TNT", "DPD", "DPO", "IVA",
    "AI",
))  # fmt: skip

#: Punctuation stripped from both ends of each white-space separated word.
_EDGE = ".,;:!?\"'()[]{}<>-\u2013\u2014\u2026~^`|\\"
_DIGITS = frozenset("0123456789")
_NUMBER_SLOT = "#"

#: Words too common to count as repetition.
_STOPWORDS = frozenset((
    "the", "and", "for", "are", "but", "not", "you", "your", "yours", "all", "any", "can", "had",
    "has", "have", "her", "his", "him", "how", "its", "just", "more", "most", "our", "out", "own",
    "she", "than", "that", "their", "them", "then", "there", "these", "they", "this", "those",
    "too", "very", "was", "were", "what", "when", "where", "which", "while", "who", "whom", "why",
    "will", "with", "would", "could", "should", "from", "into", "about", "after", "again", "also",
    "been", "before", "being", "below", "between", "both", "did", "does", "doing", "down",
    "during", "each", "few", "further", "here", "hers", "herself", "himself", "itself", "let",
    "myself", "nor", "off", "once", "only", "other", "ours", "over", "same", "some", "such",
    "through", "under", "until", "upon", "yet", "i'm", "i've", "it's", "don't", "didn't", "can't",
    "won't", "isn't", "wasn't", "that's", "you're", "they're", "we're", "i'll", "i'd", "you've",
    "you'll", "get", "got",
))  # fmt: skip

#: Typographic quotes and their plain equivalents.
_QUOTES = (
    ("\u2018", "'"),
    ("\u2019", "'"),
    ("\u201b", "'"),
    ("\u201c", '"'),
    ("\u201d", '"'),
    ("\u00ab", '"'),
    ("\u00bb", '"'),
)

# Lexicons. Each entry is a word or phrase, lower case, with ``{a|b|}`` alternatives (an empty
# alternative makes the slot optional); ``#``, anywhere but first, stands for any number.
_PROFANITY = (
    "{fuck|fucks|fucking|fucked|fucker|fuckers|fuckin|fuckwit|fuckwits|fucksake}",
    "{fck|fcking|fckin|fk|fking|fkn|fkin|feck|fecking|effing|frigging|friggin|frickin|fricking}",
    "{shit|shits|shite|shitty|shitting|bullshit|bs|crap|crappy|wtf|ffs|stfu|omfg}",
    "{bloody|damn|damned|dammit|goddamn|goddamned|hell}",
    "{piss|pissed|pissing|piss-poor|bollocks|arse|arses|arsehole|arseholes|ass|asshole|assholes}",
    "{bastard|bastards|bugger|buggers|tosser|tossers|wanker|wankers|wank|prick|pricks}",
    "{dick|dicks|dickhead|dickheads|twat|twats|sod off|screw you|go to hell|shut up}",
)
_INSULTS = (
    "{idiot|idiots|idiotic|moron|morons|moronic|imbecile|imbeciles|useless|incompetent}",
    "{incompetence|clown|clowns|pathetic|muppet|muppets|thick|stupid|stupidity|clueless}",
    "{brainless|scum|scumbag|scumbags|parasite|parasites|liar|liars|crook|crooks|thief|thieves}",
    "{robbing|fraudster|fraudsters|cowboy|cowboys|amateur|amateurs|amateurish|joker|jokers}",
    "{disgrace|disgraceful|greedy|leeches|numpty|numpties|halfwit|halfwits|donkeys|cretin}",
    "{cretins|dimwit|dimwits}",
    "you people",
    "{you're|you are|what|such} a joke",
    "bunch of {clowns|idiots|amateurs|cowboys|crooks|thieves|muppets|liars|morons|jokers}",
)
_THREATS = (
    "{lawyer|lawyers|solicitor|solicitors|attorney|attorneys|sue|suing|sued|court|courts}",
    "{ombudsman|regulator|regulators|chargeback|chargebacks|journalist|journalists|newspaper}",
    "{newspapers|watchdog|ofcom|ofgem|ofwat}",
    "small claims",
    "legal action",
    "trading standards",
    "charge back",
    "citizens advice",
    "{report|reporting} you",
    "{report|reporting} {this|it|your company|your staff} to",
    "social media",
    "the press",
    "{1-star|one-star} {review|reviews}",
    "{1|one} star {review|reviews}",
    "bad {review|reviews}",
    "{go|going} public",
    "take {this|it|you|my business} {further|elsewhere}",
    "you{'ll| will} {regret|be sorry|pay for}",
    "watch your back",
    "{tweet|tweeting|post|posting} about",
    "{cancel|cancelling|close|closing} my {account|contract|subscription}",
)
_LEGAL = (
    "{rights|protection|descriptions|goods|credit|equality|communications|services} act",
    "{discrimination|contract|contracts|payments|privacy|disabilities|fraud|consumer} act",
    "{insurance|markets|energy|misrepresentation|limitation|trade} act",
    "act {of|} #",
    "the act",
    "{section|sections|clause|clauses|regulation|regulations|article|articles|para|paragraph} #",
    "{section|sections|clause|clauses|regulation|regulations|statute|statutes|statutory}",
    "consumer rights",
    "consumer contracts",
    "{gdpr|fca|ico|cma|pci|pci-dss|ccj|dsar|legislation|directive|precedent|jurisdiction}",
    "{breach|breached|breaches|breaching}",
    "breach of contract",
    "under the",
    "{entitled|entitlement|legal|legally|illegal|illegally|unlawful|unlawfully|lawful}",
    "{law|laws|liable|liability|compliance|compliant|non-compliant|t&c|t&cs|tcs}",
    "terms {and|&} conditions",
    "terms of service",
    "data protection",
    "subject access request",
    "my {statutory |legal |consumer |}rights",
    "right to {a |}{refund|repair|replacement|cancel|reject|erasure}",
    "price cap",
    "code of practice",
)
_TECHNICAL = (
    "{firmware|protocol|protocols|latency|mbps|gbps|kbps|ghz|mhz|dns|router|routers|modem}",
    "{modems|api|apis|config|configuration|configured|misconfigured|spec|specs|specification}",
    "{specifications|rfc|voltage|amps|wattage|watts|bandwidth|ping|dhcp|ssid|ethernet|wi-fi}",
    "{wifi|vpn|ssl|tls|cpu|ram|ssd|bios|kernel|patch|patched|server|servers|logs|diagnostic}",
    "{diagnostics|calibration|calibrated|tolerance|tolerances|ipv4|ipv6|packet|packets|port}",
    "{ports|reboot|rebooted|hardware|software|bluetooth|sensor|sensors|compressor}",
    "{thermostat|psi|rpm|kwh|mah|bitrate|encryption|certificate|cache}",
    "{rfc|iso} #",
    "error {code|codes|message}",
    "ip {address|addresses}",
    "packet loss",
    "log {file|files}",
    "standing charge",
    "unit rate",
)
_EXPERTISE = (
    "as {a|an} {qualified |chartered |certified |professional |former |retired |practising |}"
    "{software |network |electrical |civil |structural |mechanical |data |it |gas |}"
    "{engineer|lawyer|solicitor|barrister|accountant|auditor|electrician|developer|programmer"
    "|doctor|nurse|pharmacist|mechanic|plumber|architect|surveyor|paralegal|technician"
    "|scientist|analyst|consultant|officer|expert|specialist|professional|teacher|economist"
    "|actuary}",
    "i{'m| am} {a|an} {qualified |chartered |certified |professional |former |retired |}"
    "{software |network |electrical |civil |structural |mechanical |data |it |gas |}"
    "{engineer|lawyer|solicitor|barrister|accountant|auditor|electrician|developer|programmer"
    "|pharmacist|mechanic|architect|surveyor|paralegal|technician|scientist|actuary}",
    "i work {in|as|for}",
    "i{'ve| have} worked {in|as|for}",
    "i know {how|exactly|what i'm talking}",
    "i know for a fact",
    "years of experience",
    "in my {professional|line of work|field|industry|experience}",
    "for your information",
    "fyi",
    "you clearly don't {know|understand}",
    "let me explain",
    "any {competent|qualified}",
    "basic {physics|maths|math|arithmetic|knowledge}",
    "{works|worked} as {a|an}",
    "{actually|technically|factually}",
)
_DEMAND = (
    "{immediately|asap|today|tonight|tomorrow|deadline|manager|managers|supervisor|supervisors}",
    "{escalate|escalated|escalating|escalation|demand|insist|urgently}",
    "right {now|away}",
    "at once",
    "by {the |}{end|close} of {the |}{day|business|week|play}",
    "by {monday|tuesday|wednesday|thursday|friday|saturday|sunday|noon|midday|tomorrow|#}",
    "within {#|an|a|one|two|three} {hour|hours|day|days|working days|business days}",
    "no later than",
    "or else",
    "or i{'ll| will}",
    "otherwise i{'ll| will}",
    "if {it is|it's|this is} not {done|sorted|fixed|resolved}",
    "someone senior",
    "i {demand|expect|want|need|insist|require}",
    "get me",
    "put me through",
    "call me back",
    "{send|give} me",
    "{fix|sort|resolve} {this|it}",
    "make sure",
    "final {warning|chance|request}",
    "last chance",
    "in writing",
)
_STUBBORN = (
    "i {don't|do not|dont} care",
    "{i've|i have|i} {already |}told {you|them|the last|your}",
    "already {told|explained|said}",
    "{i've|i have} {already |}explained",
    "for the {last|final} time",
    "again and again",
    "{three|four|five|six|seven|ten|several|multiple|many} times",
    "how many times",
    "not interested in",
    "no excuses",
    "i refuse",
    "i {won't|will not}",
    "i{'m| am} not {going to|accepting|interested|having it}",
    "not going to",
    "i {don't|do not} {want|need} to hear",
    "{don't|do not} {give|tell} me",
    "stop telling me",
    "whatever you say",
    "{that's|that is|not} my problem",
    "your problem",
    "end of {story|discussion}",
    "full stop",
    "no means no",
    "same {answer|script}",
    "{doesn't|does not} matter what",
    "i {don't|do not} accept",
    "{unacceptable|period|regardless}",
    "not acceptable",
    "repeat myself",
    "repeating myself",
)
_WHINE = (
    "{always|never|typical|again|constantly|sigh|ugh|meh|unfair|typically|honestly}",
    "every {single |}time",
    "every {day|week|month|year|morning|visit}",
    "yet again",
    "once again",
    "as usual",
    "why {me|does this always|is it always}",
    "sick {and tired |}of",
    "fed up",
    "another thing",
    "nothing ever",
    "on top of {that|this|all that}",
    "to top it {all |}off",
    "not to mention",
    "and another",
    "small thing",
    "my luck",
    "it's not fair",
    "same {again|old}",
)
_SARCASM = (
    "oh {wonderful|brilliant|fantastic|great|good|joy|lovely|perfect|fab|super|marvellous}",
    "oh how {lovely|nice|wonderful|convenient|helpful}",
    "thanks a {lot|bunch|million}",
    "thanks for nothing",
    "what a {joke|surprise|shock}",
    "{/s|lol|lmao|lmfao|rofl|haha|hahaha|hahahaha|hehe|truly|genuinely|bravo|shocker|congrats}",
    "{congratulations|world-class|award-winning|sarcasm|sarcastic|apparently|wow}",
    "{amazing|great|good|stellar|fantastic} job",
    "well {done|played}",
    "slow clap",
    "who knew",
    "speed of light",
    "yeah right",
    "sure thing",
    "colo{|u}r me",
    "i'm {shocked|stunned}",
    "what could {possibly |}go wrong",
    "{very|so} {moving|touching|reassuring}",
    "world class",
    "award winning",
    "keep up the {good |great |}work",
)
_PERSONAL_STORY = (
    "{husband|wife|daughter|daughters|son|sons|grandson|grandsons|granddaughter|grandchildren}",
    "{granddaughters|grandkids|kids|children|mum|mom|mummy|mother|dad|daddy|father|parents}",
    "{neighbour|neighbours|neighbor|neighbors|brother|sister|aunt|auntie|uncle|nephew|niece}",
    "{cousin|family|friend|friends|boyfriend|girlfriend|fiance|fiancee|fiancé|fiancée}",
    "{holiday|holidays|vacation|weather|birthday|wedding|anniversary|christmas|easter|funeral}",
    "{dog|dogs|cat|cats|puppy|kitten|pet|pets|anyway|anyways|retired|retirement|church|garden}",
    "{gardening|allotment|grandma|grandad|granny|nan|grandpa|grandmother|grandfather|baby}",
    "long story",
    "by the way",
    "as i was saying",
    "funny story",
    "when i was",
    "years ago",
    "back in {the|#}",
    "i remember",
    "bless {her|him}",
    "cup of tea",
)
_POLITENESS = (
    "{please|pls|plz|thanks|thx|ty|cheers|regards|appreciate|appreciated|grateful|kindly}",
    "{hi|hello|dear|sincerely}",
    "thank you",
    "many thanks",
    "{kind|kindest|best|warm} {regards|wishes}",
    "sorry to {bother|trouble}",
    "would you {mind|be able}",
    "could you {please|kindly}",
    "good {morning|afternoon|evening}",
)
_PRAISE = (
    "great {service|job|work|experience|team|help|support}",
    "{brilliant|excellent|helpful|recommend|recommended|recommending|outstanding|fantastic}",
    "{amazing|superb|wonderful|lovely|friendly|impressed|delighted|kudos|exceptional|perfect}",
    "{professional|efficient|courteous}",
    "thank you so much",
    "thanks so much",
    "above and beyond",
    "{five|5} {stars|star}",
    "{happy|pleased} with",
    "shout out",
    "top notch",
    "second to none",
    "credit to",
    "made my day",
)
_SUGGESTION = (
    "would be {nice|great|good|helpful|useful|better|lovely}",
    "it would {be great|help} if",
    "it'd be",
    "{suggest|suggestion|suggestions|suggested|idea|ideas|improve|improvement|improvements}",
    "feedback",
    "could you {add|offer|consider|make|introduce}",
    "please consider",
    "consider {adding|offering|making|introducing}",
    "feature {request|requests}",
    "why not",
    "{maybe|perhaps} {you|they} could",
    "you {should|could} {add|offer|have|consider|introduce|make|let}",
    "i'd love to see",
    "i wish {you|there|it|the}",
    "how about",
    "option to",
    "just a thought",
)
_FIRST_PERSON = ("{i|me|my|mine|myself|i'm|i've|i'd|i'll|im|ive}",)
_SECOND_PERSON = ("{you|your|yours|yourself|yourselves|you're|you've|you'll|you'd|u|ur}",)

#: Lexicon categories, in the order of their counters.
_CATEGORIES: tuple[tuple[str, ...], ...] = (
    _PROFANITY,
    _INSULTS,
    _THREATS,
    _LEGAL,
    _TECHNICAL,
    _EXPERTISE,
    _DEMAND,
    _STUBBORN,
    _WHINE,
    _SARCASM,
    _PERSONAL_STORY,
    _POLITENESS,
    _PRAISE,
    _SUGGESTION,
    _FIRST_PERSON,
    _SECOND_PERSON,
)
(
    _C_PROFANITY,
    _C_INSULTS,
    _C_THREATS,
    _C_LEGAL,
    _C_TECHNICAL,
    _C_EXPERTISE,
    _C_DEMAND,
    _C_STUBBORN,
    _C_WHINE,
    _C_SARCASM,
    _C_PERSONAL_STORY,
    _C_POLITENESS,
    _C_PRAISE,
    _C_SUGGESTION,
    _C_FIRST_PERSON,
    _C_SECOND_PERSON,
) = range(len(_CATEGORIES))

#: Emoji that mark a category besides counting as emoji.
_EMOJI_CATEGORY = {
    "\U0001f644": _C_SARCASM,  # face with rolling eyes
    "\U0001f643": _C_SARCASM,  # upside-down face
    "\U0001f602": _C_SARCASM,  # face with tears of joy
    "\U0001f923": _C_SARCASM,  # rolling on the floor laughing
    "\U0001f60f": _C_SARCASM,  # smirking face
    "\U0001f44f": _C_SARCASM,  # clapping hands
    "\U0001f921": _C_SARCASM,  # clown face
    "\U0001f480": _C_SARCASM,  # skull
    "\U0001f606": _C_SARCASM,  # grinning squinting face
    "\U0001f605": _C_SARCASM,  # grinning face with sweat
    "\U0001f926": _C_SARCASM,  # face palm
    "\U0001f937": _C_SARCASM,  # shrug
    "\U0001f3c6": _C_SARCASM,  # trophy
    "\U0001f947": _C_SARCASM,  # first place medal
    "\U0001f629": _C_WHINE,  # weary face
    "\U0001f62b": _C_WHINE,  # tired face
    "\U0001f612": _C_WHINE,  # unamused face
    "\U0001f61e": _C_WHINE,  # disappointed face
    "\U0001f614": _C_WHINE,  # pensive face
    "\U0001f62d": _C_WHINE,  # loudly crying face
    "\U0001f621": _C_PROFANITY,  # pouting face
    "\U0001f92c": _C_PROFANITY,  # face with symbols on mouth
    "\U0001f595": _C_PROFANITY,  # middle finger
    "\u2764": _C_PRAISE,  # red heart
    "\U0001f60d": _C_PRAISE,  # smiling face with heart-eyes
    "\U0001f64f": _C_PRAISE,  # folded hands
    "\U0001f44d": _C_PRAISE,  # thumbs up
    "\U0001f60a": _C_PRAISE,  # smiling face with smiling eyes
    "\U0001f970": _C_PRAISE,  # smiling face with hearts
    "\u2b50": _C_PRAISE,  # star
    "\U0001f31f": _C_PRAISE,  # glowing star
}

_BRACE = re.compile(r"\{([^{}]*)\}")
_PUNCT_RUN = re.compile(r"[!?]{2,}")
_ENDS_WITH_QUESTION = re.compile(r"\?[\s\W]*\Z")
_SENTENCE_SPLIT = re.compile(r"[.!?\n]+")
_UPPER_WORD = re.compile(
    r"[A-Z\u00c0-\u00d6\u00d8-\u00de\u0391-\u03a9\u0410-\u042f](?<![^\W\d_].)"
    r"[A-Z\u00c0-\u00d6\u00d8-\u00de\u0391-\u03a9\u0410-\u042f]+(?![^\W\d_])"
)
_NUMBER = re.compile(r"[0-9](?<![\w.,][0-9])[\d.,:/-]*")
_MONEY = re.compile(
    r"[£$€¥₹0-9](?:(?<=[£$€¥₹])\s?\d[\d,.]*"
    r"|(?<=[0-9])(?<![\w.,][0-9])[\d,.]*\s?(?:[£$€¥₹]|(?:k|m|bn)?\s?"
    r"(?:gbp|usd|eur|aud|cad|nzd|jpy|inr|chf|pounds?|quid|dollars?|bucks|euros?|pence|p)"
    r"(?![^\W\d_])))"
)
_MONEY_CODE_FIRST = re.compile(r"(?<![^\W\d_])(?:gbp|usd|eur|aud|cad|nzd|jpy|inr|chf)\s?\d")
_CURRENCY_CODES = ("gbp", "usd", "eur", "aud", "cad", "nzd", "jpy", "inr", "chf")
_TIMES = re.compile(r"[0-9](?<![\w.,][0-9])\d*\s+times(?![^\W\d_])")
_DIGIT = re.compile(r"[0-9]")
_UNIT = re.compile(
    r"[0-9](?<![\w.][0-9])[\d.]*"
    r"(?:\s?(?:mbps|gbps|kbps|ghz|mhz|kwh|kw|mah|ms|gb|tb|mb|psi|rpm|dpi|hz|nm)|v)(?![^\W\d_])"
)
_SECTION_ABBREVIATION = re.compile(r"s\.(?<![\w]s\.)\s?\d")
_SCORE = re.compile(r"[0-9](?<![\w/][0-9])\d?/10(?!\d)")
_SCARE_QUOTE = re.compile(
    r"\"(?:great|wonderful|brilliant|fantastic|amazing|excellent|lovely|perfect|helpful|"
    r"premium|priority|express|fast|quick|unlimited|free|service|customer service|support|"
    r"guaranteed|24/7|next day|sorry|valued|fixed|resolved|caring)[^\"\n]{0,30}\""
)
_MASK_CHAR = re.compile(r"[*#@$%!](?<=[a-z][*#@$%!])(?=[a-z*#@$%])")
_MASKED_PROFANITY = re.compile(
    r"(?<![\w*#@$%!])(?:"
    r"f[*#@%$!]+\w*|f[u*#@][*#@%$!c]k\w*|sh[!*1#@]t\w*|s[*#@]{1,3}t|"
    r"b[*#@]{1,3}(?:ch|tard|s?tards?|llocks)|a[*#@$]{2}(?:hole)?|cr[*@]p|p[*]ss\w*|tw[*]t|"
    r"bulls[*#@!]{1,3}t"
    r")(?![\w*#@$%!])"
)
_EMOJI = re.compile(
    "[\U0001f1e6-\U0001f1ff\U0001f300-\U0001f5ff\U0001f600-\U0001f64f\U0001f680-\U0001f6ff"
    "\U0001f900-\U0001faff\u2600-\u27bf\u2b50\u2b55]"
)
_HIGH_CHARACTER = re.compile("[\u2600-\U0010ffff]")
_EMOTICON = re.compile(r"[:;=](?<![\w:/][:;=])-?[()\[\]DdPp|/](?![\w/])")


def _expand(pattern: str) -> list[str]:
    """Every phrase a lexicon entry stands for, its ``{a|b}`` slots spelled out."""
    match = _BRACE.search(pattern)
    if match is None:
        return [" ".join(pattern.split())]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [
        phrase for choice in match.group(1).split("|") for phrase in _expand(head + choice + tail)
    ]


class _Node:
    """One word of the phrase trie: the categories a phrase ending here marks, and what follows."""

    __slots__ = ("marks", "next")

    def __init__(self) -> None:
        self.marks: tuple[int, ...] = ()
        self.next: dict[str, _Node] = {}


def _build_trie(categories: Iterable[tuple[str, ...]]) -> _Node:
    """The trie of every phrase of every lexicon category, by word."""
    root = _Node()
    for category, entries in enumerate(categories):
        for entry in entries:
            for phrase in _expand(entry):
                node = root
                for word in phrase.split():
                    node = node.next.setdefault(word, _Node())
                if node is not root and category not in node.marks:
                    node.marks = (*node.marks, category)
    return root


_TRIE = _build_trie(_CATEGORIES)


def _lexicon_counts(words: list[str]) -> list[int]:
    """How many words and phrases of each lexicon category occur in ``words``.

    Phrases may overlap: every phrase that starts at every word counts. A ``#`` in a phrase
    matches any word that starts with a digit.
    """
    counts = [0] * len(_CATEGORIES)
    size = len(words)
    first = _TRIE.next.get
    for position, word in enumerate(words):
        node = first(word)
        following = position + 1
        while node is not None:
            for category in node.marks:
                counts[category] += 1
            if following == size or not node.next:
                break
            after = words[following]
            following += 1
            child = node.next.get(after)
            if child is None and after[0] in _DIGITS:
                child = node.next.get(_NUMBER_SLOT)
            node = child
    return counts


def _scaled(count: int, cap: int) -> float:
    """``count`` scaled into ``[0, 1]``, saturating at ``cap``."""
    return min(count, cap) / cap


def _log_scaled(value: int, cap: float) -> float:
    """``log1p(value)`` over ``cap``, at most 1."""
    return min(math.log1p(value) / cap, 1.0)


def _caps(text: str, letters: int) -> tuple[float, int]:
    """Share of ``letters`` in fully upper-case words, and the number of shouted words.

    Only words of two letters or more count; known acronyms are neither.
    """
    upper_letters = 0
    shouted = 0
    for word in _UPPER_WORD.findall(text):
        if word in _ACRONYMS:
            continue
        upper_letters += len(word)
        if len(word) >= 3:
            shouted += 1
    if not upper_letters:
        return 0.0, 0
    return min(upper_letters / max(letters, 1), 1.0), shouted


def _exclaim_runs(text: str) -> int:
    """Runs of two or more of ``!`` and ``?`` that hold at least one ``!``."""
    if "!" not in text:
        return 0
    return sum(1 for run in _PUNCT_RUN.findall(text) if "!" in run)


def _masked_profanity(text: str) -> int:
    """Swear words written with symbols in place of letters (``f***``, ``sh!t``)."""
    if _MASK_CHAR.search(text) is None:
        return 0
    return len(_MASKED_PROFANITY.findall(text))


def _emoji(text: str, counts: list[int]) -> int:
    """Number of emoji and emoticons; emoji that mark a category add to ``counts``."""
    found = len(_EMOTICON.findall(text)) if ":" in text or ";" in text or "=" in text else 0
    if text.isascii() or _HIGH_CHARACTER.search(text) is None:
        return found
    for symbol in _EMOJI.findall(text):
        found += 1
        category = _EMOJI_CATEGORY.get(symbol)
        if category is not None:
            counts[category] += 1
    return found


def _repetition(words: list[str]) -> float:
    """Share of content-word occurrences (stop words aside) that repeat an earlier one."""
    total = len(words) - sum(map(_STOPWORDS.__contains__, words))
    if total < 3:
        return 0.0
    return 1.0 - len(set(words).difference(_STOPWORDS)) / total


def _repeated_sentences(lowered: str) -> float:
    """Share of sentences of two words or more that repeat an earlier one."""
    sentences = [part for part in map(str.strip, _SENTENCE_SPLIT.split(lowered)) if " " in part]
    if len(sentences) < 2:
        return 0.0
    return 1.0 - len(set(sentences)) / len(sentences)


def _share(count: int, words: int) -> float:
    """``count`` as a share of ``words``, scaled so that one word in four reads as 1."""
    return min(4.0 * count / words, 1.0) if words else 0.0


def _plain_quotes(text: str) -> str:
    """``text`` with typographic quotes replaced by plain ones."""
    for typographic, plain in _QUOTES:
        if typographic in text:
            text = text.replace(typographic, plain)
    return text


def _money(lowered: str) -> int:
    """Number of amounts of money: a currency symbol, code or word next to a number."""
    found = len(_MONEY.findall(lowered))
    if any(code in lowered for code in _CURRENCY_CODES):
        found += len(_MONEY_CODE_FIRST.findall(lowered))
    return found


def text_features(text: str) -> list[float]:
    """The feature vector of one message, one value in ``[0, 1]`` per :data:`FEATURE_NAMES`."""
    scanned = text[:SCAN_CHARS]
    if not scanned.isascii():
        scanned = _plain_quotes(scanned)
    lowered = scanned.lower()
    words = list(filter(None, map(str.strip, lowered.split(), repeat(_EDGE))))
    n_words = len(words) if len(text) <= SCAN_CHARS else max(len(words), len(text.split()))
    counts = _lexicon_counts(words)
    has_digits = _DIGIT.search(lowered) is not None
    counts[_C_PROFANITY] += _masked_profanity(lowered)
    if "s." in lowered:
        counts[_C_LEGAL] += len(_SECTION_ABBREVIATION.findall(lowered))
    if '"' in lowered:
        counts[_C_SARCASM] += len(_SCARE_QUOTE.findall(lowered))
    if "/10" in lowered:
        counts[_C_SARCASM] += len(_SCORE.findall(lowered))
    if has_digits:
        counts[_C_TECHNICAL] += len(_UNIT.findall(lowered))
        if "times" in lowered:
            counts[_C_STUBBORN] += len(_TIMES.findall(lowered))
    emoji = _emoji(scanned, counts)
    caps_ratio, shouted = _caps(scanned, sum(map(len, words)))
    return [
        _log_scaled(len(text), _LOG_CHARS_CAP),
        _log_scaled(n_words, _LOG_WORDS_CAP),
        1.0 if 0 < n_words <= _VERY_SHORT_WORDS else 0.0,
        1.0 if n_words >= _LONG_WORDS else 0.0,
        caps_ratio,
        _scaled(shouted, 10),
        _scaled(scanned.count("!"), 10),
        _scaled(_exclaim_runs(scanned), 5),
        _scaled(scanned.count("?"), 5),
        1.0 if _ENDS_WITH_QUESTION.search(scanned[-40:]) else 0.0,
        _scaled(counts[_C_PROFANITY], 3),
        _scaled(counts[_C_INSULTS], 3),
        _scaled(counts[_C_THREATS], 3),
        _scaled(counts[_C_LEGAL], 5),
        _scaled(counts[_C_TECHNICAL], 5),
        _scaled(counts[_C_EXPERTISE], 2),
        _scaled(_money(lowered) if has_digits else 0, 5),
        _scaled(len(_NUMBER.findall(lowered)) if has_digits else 0, 10),
        _scaled(counts[_C_DEMAND], 5),
        _scaled(counts[_C_STUBBORN], 3),
        _scaled(counts[_C_WHINE], 5),
        _scaled(counts[_C_SARCASM], 3),
        _scaled(counts[_C_PERSONAL_STORY], 8),
        _scaled(counts[_C_POLITENESS], 4),
        _scaled(counts[_C_PRAISE], 4),
        _scaled(counts[_C_SUGGESTION], 3),
        _scaled(emoji, 5),
        _scaled(scanned.count('"') // 2, 3),
        _repetition(words),
        _repeated_sentences(lowered),
        _share(counts[_C_FIRST_PERSON], n_words),
        _share(counts[_C_SECOND_PERSON], n_words),
    ]


def feature_matrix(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The features of many messages: shape ``(len(texts), len(FEATURE_NAMES))``, float32."""
    matrix = np.zeros((len(texts), len(FEATURE_NAMES)), dtype=np.float32)
    for row, text in enumerate(texts):
        matrix[row] = text_features(text)
    return matrix
