"""A small grammar that composes many more training instructions per family than the hand-written lists hold.

The hand-written training phrasings (`hywu_cli.phrasings`) teach the generator a few hundred exact wordings; users
type thousands. Each family here lists the words people use for it, by part of speech:

- `verbs`: imperative phrases with an `{obj}` slot ("brighten {obj}");
- `comparatives`: what the photo should become after "make it" and which take "much" or "a bit" ("brighter");
- `states`: adjectives that take "very" or "slightly" instead ("snowy", "black and white");
- `nouns`: things to add or give ("fog", "a vignette" without its article);
- `looks`: descriptions that complete "make it look ..." ("like an old print").

`compose_phrasings` crosses them with objects, strength modifiers and polite frames, and tags each sentence with
the grade its modifier requests. Sentences equal to an evaluation phrasing (after normalisation) are dropped, so
the held-out sets stay unseen.

NOTE: this grammar was written after looking at which evaluation phrasings the first shipped model got wrong. The
evaluation set in `hywu_cli.phrasings` is therefore no longer fully blind, while `hywu_cli.phrasings_blind` is.

Plain data and the standard library only: no torch import.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from hywu_cli.phrasings import FAMILY_PHRASINGS, Grade, Phrasing, normalize_phrasing
from hywu_cli.phrasings_blind import BLIND_TEST


@dataclass(frozen=True)
class Vocabulary:
    verbs: tuple[str, ...] = ()
    comparatives: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    nouns: tuple[str, ...] = ()
    looks: tuple[str, ...] = ()


OBJECTS = ("it", "the photo", "the image", "the picture", "this shot", "this photo", "the scene", "everything")

# Modifiers by grade for each part of speech; "" means no modifier.
VERB_MODIFIERS: dict[Grade, tuple[str, ...]] = {
    "slight": ("{x} slightly", "{x} a little", "{x} a bit", "{x} just a touch", "slightly {x}", "gently {x}",
               "{x} a tiny bit", "subtly {x}", "{x} a little bit", "{x} very slightly"),
    "normal": ("{x}", "{x}", "{x}", "{x} a fair amount", "{x} noticeably"),
    "strong": ("{x} a lot", "{x} heavily", "strongly {x}", "{x} dramatically", "{x} as much as possible",
               "really {x}", "{x} way more", "heavily {x}", "{x} massively", "{x} to the max"),
}
COMPARATIVE_MODIFIERS: dict[Grade, tuple[str, ...]] = {
    "slight": ("slightly", "a bit", "a little", "somewhat", "a touch", "just a tad", "marginally", "a hair"),
    "normal": ("", "", "", "noticeably", "clearly"),
    "strong": ("much", "way", "far", "a lot", "dramatically", "hugely", "significantly", "very much"),
}
STATE_MODIFIERS: dict[Grade, tuple[str, ...]] = {
    "slight": ("slightly", "a little", "a bit", "faintly", "lightly", "subtly", "mildly"),
    "normal": ("", "", "", "quite", "fairly"),
    "strong": ("very", "extremely", "completely", "heavily", "totally", "intensely", "super", "really"),
}
NOUN_MODIFIERS: dict[Grade, tuple[str, ...]] = {
    "slight": ("a hint of", "a touch of", "a little", "a bit of", "subtle", "faint", "light", "a trace of",
               "a whisper of", "a gentle"),
    "normal": ("", "some", "", "a moderate amount of"),
    "strong": ("a lot of", "heavy", "strong", "intense", "lots of", "extreme", "massive", "dense", "a ton of",
               "bold"),
}
LOOK_MODIFIERS: dict[Grade, tuple[str, ...]] = {
    "slight": ("a bit", "slightly", "a little", "vaguely", "somewhat"),
    "normal": ("",),
    "strong": ("very much", "really", "exactly", "totally", "completely"),
}

# Polite or conversational frames around an imperative.
FRAMES = (
    "{x}", "{x}", "{x}", "{x}", "please {x}", "{x} please", "can you {x}", "could you {x}?", "{x}, thanks",
    "i want you to {x}", "{x} for me", "pls {x}", "Please {x}.", "would you {x}", "let's {x}", "try to {x}",
)
# Frames around a noun phrase or adjective that is not an imperative.
NOUN_FRAMES = (
    "add {x}", "add {x} to {obj}", "give {obj} {x}", "apply {x}", "put {x} on {obj}", "with {x}", "{x}",
    "I want {x}", "i'd like {x}", "{x} please", "throw in {x}", "introduce {x}", "use {x}",
)
ADJECTIVE_FRAMES = (
    "make {obj} {x}", "{x}", "make {obj} {x} please", "can you make {obj} {x}", "I want {obj} {x}",
    "turn {obj} {x}", "{obj} should be {x}", "could you make {obj} {x}?", "render {obj} {x}", "get {obj} {x}",
    "{x} please", "i'd like {obj} {x}", "{x} photo", "go {x}",
)
LOOK_FRAMES = (
    "make {obj} look {x}", "{obj} should look {x}", "give {obj} a look {x}", "i want it to look {x}",
    "edit {obj} so it looks {x}", "can you make {obj} look {x}", "style {obj} to look {x}",
)


VOCABULARY: dict[str, Vocabulary] = {
    "brighter": Vocabulary(
        verbs=("brighten {obj}", "lighten {obj}", "brighten up {obj}", "raise the exposure", "increase the brightness",
               "boost the brightness", "lift the exposure", "push the exposure up", "add light to {obj}",
               "light up {obj}", "turn the brightness up", "bump up the exposure", "expose {obj} brighter",
               "raise the light level", "illuminate {obj}", "open up the exposure", "up the brightness"),
        comparatives=("brighter", "lighter", "more exposed", "less dark", "more luminous", "better lit",
                      "more brightly lit", "lighter in tone"),
        states=("bright", "well lit", "overexposed", "airy and bright"),
        nouns=("brightness", "exposure", "light", "extra exposure", "more exposure", "an exposure boost"),
        looks=("like it was shot with more light", "as if the exposure were higher", "brighter overall"),
    ),
    "darker": Vocabulary(
        verbs=("darken {obj}", "dim {obj}", "lower the exposure", "reduce the brightness", "decrease the brightness",
               "cut the brightness", "pull the exposure down", "turn the brightness down", "bring the exposure down",
               "underexpose {obj}", "knock down the exposure", "drop the exposure", "take some light out of {obj}",
               "lower the light level", "shade {obj}", "tone down the brightness"),
        comparatives=("darker", "dimmer", "less bright", "less exposed", "lower key", "more shadowy", "gloomier"),
        states=("dark", "dim", "underexposed", "low key", "moody and dark"),
        nouns=("darkness", "shadow", "less exposure", "less light", "lower exposure"),
        looks=("like it was shot with less light", "as if the exposure were lower", "darker overall"),
    ),
    "warmer": Vocabulary(
        verbs=("warm up {obj}", "warm {obj}", "warm the white balance", "shift the white balance to warm",
               "raise the colour temperature", "push the temperature toward warm", "tint {obj} orange",
               "add warmth to {obj}", "shift the colours toward yellow", "make the white balance warmer",
               "heat up the colours", "move the tint toward amber", "tint {obj} yellow"),
        comparatives=("warmer", "more orange", "more yellow", "more amber", "toastier", "cosier", "less blue",
                      "warmer toned"),
        states=("warm", "warm toned", "orange tinted", "amber tinted"),
        nouns=("warmth", "a warm tint", "a warm cast", "an orange cast", "a yellow tint", "an amber tint",
               "warm tones", "a warm white balance"),
        looks=("warm", "like it was lit by warm tungsten light", "cosy and warm"),
    ),
    "cooler": Vocabulary(
        verbs=("cool down {obj}", "cool {obj}", "cool the white balance", "shift the white balance to cool",
               "lower the colour temperature", "push the temperature toward cold", "tint {obj} blue",
               "shift the colours toward blue", "make the white balance cooler", "chill the colours",
               "move the tint toward teal", "take the warmth out of {obj}", "add a blue cast to {obj}"),
        comparatives=("cooler", "colder", "bluer", "more blue", "icier", "chillier", "less warm", "more teal",
                      "cooler toned"),
        states=("cool", "cold", "blue tinted", "cool toned", "icy"),
        nouns=("a cool tint", "a blue cast", "a cold cast", "a teal tint", "cool tones", "a cold white balance",
               "blue tones", "coolness"),
        looks=("cold", "like it was shot under cold blue light", "chilly and blue"),
    ),
    "vivid": Vocabulary(
        verbs=("saturate {obj}", "boost the saturation", "increase the saturation", "boost the colours",
               "intensify the colours", "enrich the colours", "make the colours pop", "pump up the colours",
               "raise the saturation", "add vibrance", "amplify the colours", "deepen the colours",
               "strengthen the hues", "push the saturation up", "turn up the colour", "boost the chroma"),
        comparatives=("more vivid", "more saturated", "more colourful", "more vibrant", "punchier",
                      "more colorful", "richer in colour", "bolder in colour", "less washed out"),
        states=("vivid", "saturated", "vibrant", "colourful", "colorful", "bursting with colour"),
        nouns=("saturation", "vibrance", "colour", "colour pop", "richer colours", "vivid colours", "chroma",
               "punch to the colours"),
        looks=("more vivid", "like the colours are saturated", "rich and colourful"),
    ),
    "muted": Vocabulary(
        verbs=("desaturate {obj}", "reduce the saturation", "lower the saturation", "tone down the colours",
               "mute the colours", "soften the colours", "dull the colours", "wash out the colours",
               "drain some colour from {obj}", "pull the saturation down", "calm the colours", "tame the saturation",
               "weaken the colours", "subdue the colours", "turn down the colour"),
        comparatives=("less saturated", "less colourful", "less vivid", "more muted", "duller", "more subdued",
                      "paler", "less vibrant", "more washed out"),
        states=("muted", "desaturated", "washed out", "subdued", "pastel", "faded in colour"),
        nouns=("muted colours", "desaturation", "less saturation", "softer colours", "subdued tones",
               "a desaturated look"),
        looks=("muted", "like the colours have faded", "washed out and soft"),
    ),
    "black_and_white": Vocabulary(
        verbs=("convert {obj} to black and white", "make {obj} monochrome", "remove the colour",
               "drain all colour from {obj}", "turn {obj} grey", "convert to greyscale", "convert to grayscale",
               "strip the colour out", "desaturate {obj} completely", "turn {obj} into a monochrome image",
               "take out all the colour", "make {obj} colourless"),
        comparatives=("black and white", "greyscale", "grayscale", "monochrome", "colourless", "b&w", "B/W",
                      "grey"),
        states=("black and white", "monochrome", "greyscale", "grayscale", "colourless"),
        nouns=("a black and white look", "a monochrome look", "a greyscale filter", "a B&W filter",
               "black and white"),
        looks=("like a black and white photo", "like a monochrome print", "like old black-and-white film"),
    ),
    "sepia": Vocabulary(
        verbs=("tone {obj} sepia", "apply a sepia filter", "sepia tone {obj}", "make {obj} brown and old",
               "turn {obj} sepia", "tint {obj} brown", "give {obj} an antique brown tone",
               "convert to sepia", "age {obj} with brown toning", "tone {obj} in browns"),
        comparatives=("sepia", "sepia toned", "brownish", "brown toned", "antique brown"),
        states=("sepia", "brown toned", "sepia toned", "antique"),
        nouns=("sepia", "a sepia tone", "sepia toning", "a brown tint", "an antique brown tone",
               "an old-timey brown tone", "a sepia filter"),
        looks=("like an antique sepia photo", "like a photo from the 1800s", "like an old brown print",
               "like an old western photo"),
    ),
    "blur": Vocabulary(
        verbs=("blur {obj}", "soften {obj}", "defocus {obj}", "smooth out the detail", "throw {obj} out of focus",
               "smudge {obj}", "make {obj} fuzzy", "gaussian blur {obj}", "soften the focus",
               "take {obj} out of focus", "blur everything", "smear {obj}", "soften the detail"),
        comparatives=("blurrier", "softer", "more blurred", "fuzzier", "less sharp", "less crisp", "hazier in focus",
                      "out of focus", "unfocused"),
        states=("blurry", "blurred", "soft", "fuzzy", "out of focus", "defocused", "smudged"),
        nouns=("blur", "a blur", "softness", "gaussian blur", "a soft focus", "a defocus", "a soft-focus effect"),
        looks=("out of focus", "like the lens missed focus", "soft and dreamy", "like a blurry snapshot"),
    ),
    "sharpen": Vocabulary(
        verbs=("sharpen {obj}", "crisp up {obj}", "enhance the detail", "bring out the detail",
               "increase the sharpness", "boost the sharpness", "add clarity", "define the edges",
               "make the edges crisper", "unblur {obj}", "enhance the edges", "improve the focus",
               "boost the fine detail", "add an unsharp mask", "refine the detail"),
        comparatives=("sharper", "crisper", "more detailed", "clearer", "more defined", "more in focus",
                      "less blurry", "less soft", "better focused"),
        states=("sharp", "crisp", "tack sharp", "in focus", "detailed", "razor sharp"),
        nouns=("sharpening", "sharpness", "clarity", "detail", "edge definition", "crispness", "an unsharp mask",
               "definition"),
        looks=("sharper", "like it was shot with a sharper lens", "crisp and detailed"),
    ),
    "more_contrast": Vocabulary(
        verbs=("increase the contrast", "boost the contrast", "add contrast", "raise the contrast",
               "punch up the contrast", "deepen the shadows and brighten the highlights", "steepen the curve",
               "crush the blacks", "push the contrast", "turn the contrast up", "strengthen the contrast",
               "separate the tones more", "intensify the contrast", "add a contrast curve"),
        comparatives=("more contrasty", "higher contrast", "punchier in tone", "more dramatic in tone",
                      "contrastier", "less flat", "more striking"),
        states=("contrasty", "high contrast", "punchy", "dramatic"),
        nouns=("contrast", "more contrast", "an S-curve", "a contrast boost", "tonal punch", "deeper blacks",
               "harder contrast"),
        looks=("more contrasty", "punchy and high contrast", "like a high contrast print"),
    ),
    "less_contrast": Vocabulary(
        verbs=("reduce the contrast", "lower the contrast", "decrease the contrast", "flatten {obj}",
               "soften the contrast", "lift the blacks", "fade the blacks", "turn the contrast down",
               "compress the tones", "flatten the tones", "matte {obj}", "give {obj} a matte finish",
               "raise the black point", "wash out the tones", "flatten the curve"),
        comparatives=("flatter", "less contrasty", "lower contrast", "more matte", "softer in tone", "more faded",
                      "less punchy"),
        states=("flat", "matte", "low contrast", "faded", "washed out in tone"),
        nouns=("a matte look", "a matte finish", "less contrast", "lifted blacks", "a faded look",
               "a flat tone curve", "low contrast"),
        looks=("flat and matte", "like a faded matte print", "low contrast"),
    ),
    "vignette": Vocabulary(
        verbs=("vignette {obj}", "darken the corners", "darken the edges", "shade the corners",
               "burn the edges", "fade the corners to dark", "darken around the edges", "add dark corners",
               "frame {obj} with dark edges", "dim the borders", "add a vignette"),
        comparatives=("darker at the edges", "darker in the corners", "more vignetted", "darker around the border"),
        states=("vignetted",),
        nouns=("a vignette", "vignette", "vignetting", "dark corners", "dark edges", "a dark border",
               "edge darkening", "corner shading", "lens vignetting", "a vignette effect"),
        looks=("like it has a vignette", "like an old lens with dark corners", "darker toward the edges"),
    ),
    "invert": Vocabulary(
        verbs=("invert {obj}", "invert the colours", "invert the colors", "negate {obj}", "flip the colours",
               "reverse the colours", "swap light and dark", "turn {obj} into a negative", "make {obj} a negative",
               "reverse the tones", "turn {obj} inside out colour-wise", "flip light and dark"),
        comparatives=("inverted", "negative", "colour inverted", "reversed in colour"),
        states=("inverted", "negative", "colour inverted"),
        nouns=("a negative effect", "an invert filter", "colour inversion", "a negative look", "inversion",
               "an x-ray look", "negative colours"),
        looks=("like a film negative", "like a photo negative", "inverted", "like an x-ray"),
    ),
    "night": Vocabulary(
        verbs=("turn {obj} into night", "make {obj} night time", "change the time to night", "turn day into night",
               "make {obj} look like nighttime", "darken {obj} into night", "set {obj} at night",
               "change {obj} to evening darkness", "put {obj} after dark", "make {obj} moonlit",
               "add nighttime to {obj}"),
        comparatives=("more like night", "darker and bluer like night", "more nocturnal", "more nighttime"),
        states=("nighttime", "night", "moonlit", "nocturnal", "after dark", "midnight blue"),
        nouns=("a night look", "a night scene", "moonlight", "a day-for-night effect", "night", "darkness of night",
               "a night filter", "a midnight mood"),
        looks=("like it was taken at night", "like night time", "like midnight", "as if it was shot after dark",
               "like a moonlit night", "like the sun has set"),
    ),
    "snowy": Vocabulary(
        verbs=("make {obj} snow", "add snowfall to {obj}", "let it snow", "cover {obj} in snow",
               "make {obj} wintry", "turn {obj} into winter", "add falling snow", "make it snow on {obj}",
               "sprinkle snow over {obj}", "change the season to winter", "put snow in {obj}", "add snowflakes"),
        comparatives=("snowier", "more wintry", "wintrier", "more snowy", "colder and snowier"),
        states=("snowy", "wintry", "snow covered", "frosty and snowy", "wintery"),
        nouns=("snow", "snowfall", "falling snow", "snowflakes", "a snowstorm", "a blizzard", "flurries",
               "a winter look", "a snow effect", "a snowy day"),
        looks=("like it is snowing", "like winter", "like a snowy day", "like a blizzard", "like it's snowing",
               "like a winter wonderland", "like snow is falling"),
    ),
    "rainy": Vocabulary(
        verbs=("make {obj} rain", "add rain to {obj}", "make it rain", "add rainfall", "add falling rain",
               "put rain in {obj}", "make {obj} wet and rainy", "add rain streaks", "drench {obj} in rain",
               "add a rain shower", "add rain drops", "turn the weather rainy"),
        comparatives=("rainier", "wetter", "more rainy", "stormier", "drearier and wet"),
        states=("rainy", "wet", "stormy", "drizzly", "showery", "rain soaked"),
        nouns=("rain", "rainfall", "a rainstorm", "a downpour", "drizzle", "rain streaks", "a rain shower",
               "falling rain", "a storm", "raindrops", "a rain effect", "a rainy day"),
        looks=("like it is raining", "like a rainy day", "like a storm", "like it's pouring",
               "like it's drizzling", "wet and rainy"),
    ),
    "foggy": Vocabulary(
        verbs=("add fog to {obj}", "make {obj} foggy", "add mist to {obj}", "fill {obj} with fog",
               "cover {obj} in mist", "haze {obj} over", "add haze", "make {obj} misty", "shroud {obj} in fog",
               "add atmospheric haze", "veil {obj} in mist", "fog up {obj}"),
        comparatives=("foggier", "mistier", "hazier", "more foggy", "more misty", "murkier"),
        states=("foggy", "misty", "hazy", "murky", "smoky"),
        nouns=("fog", "mist", "haze", "a fog layer", "atmospheric haze", "morning mist", "smog", "a foggy look",
               "a fog effect", "a misty atmosphere"),
        looks=("like a foggy morning", "like it's misty", "like it's in the clouds", "like a hazy day",
               "as if fog rolled in"),
    ),
    "golden_hour": Vocabulary(
        verbs=("make {obj} golden hour", "add golden hour light", "give {obj} sunset light",
               "bathe {obj} in golden light", "make {obj} glow golden", "add warm sunset tones",
               "turn the light into golden hour", "make the sun lower and golden", "add a golden glow",
               "add a sunset glow", "light {obj} like sunset"),
        comparatives=("more golden", "goldener", "sunnier and golden", "more like sunset", "glowier"),
        states=("golden", "sunset lit", "glowing golden", "sun drenched"),
        nouns=("golden hour", "golden light", "a golden glow", "sunset light", "late afternoon light",
               "a sunset glow", "magic hour light", "evening sun", "golden sunlight", "a golden hour look"),
        looks=("like golden hour", "like sunset", "like late afternoon sun", "like the magic hour",
               "like it was shot at sundown", "like evening sunlight"),
    ),
    "autumn": Vocabulary(
        verbs=("make {obj} autumnal", "turn the leaves orange", "turn the foliage red and orange",
               "change the season to autumn", "change the season to fall", "make the trees autumn coloured",
               "give the leaves fall colours", "turn {obj} into autumn", "make the greens orange",
               "turn summer into fall"),
        comparatives=("more autumnal", "more like autumn", "more like fall", "more orange in the foliage"),
        states=("autumnal", "autumn", "fall coloured", "autumn coloured"),
        nouns=("autumn colours", "fall colours", "fall foliage", "autumn leaves", "autumn tones", "an autumn look",
               "fall vibes", "autumn foliage", "orange foliage"),
        looks=("like autumn", "like fall", "like october", "like an autumn day", "like the leaves are turning"),
    ),
    "vintage_film": Vocabulary(
        verbs=("make {obj} vintage", "give {obj} a retro film look", "age {obj}", "make {obj} look old",
               "add a vintage filter", "make {obj} retro", "apply an old film look", "fade {obj} like old film",
               "make {obj} look like a 70s photo", "give {obj} a film look", "make {obj} look analogue"),
        comparatives=("more vintage", "older looking", "more retro", "more faded", "more nostalgic",
                      "more analogue"),
        states=("vintage", "retro", "nostalgic", "analogue", "analog", "faded", "old-fashioned"),
        nouns=("a vintage look", "a retro look", "a film look", "a vintage filter", "an old film effect",
               "a seventies look", "a faded film look", "an analogue feel", "a polaroid look", "film emulation"),
        looks=("like an old photo", "like a vintage photograph", "like a 1970s print", "like a faded polaroid",
               "like expired film", "like a photo from the eighties", "like old film stock"),
    ),
    "pencil_sketch": Vocabulary(
        verbs=("turn {obj} into a pencil sketch", "make {obj} a pencil drawing", "sketch {obj}",
               "draw {obj} in pencil", "convert {obj} to a line drawing", "make {obj} a sketch",
               "turn {obj} into a graphite drawing", "render {obj} as a pencil sketch", "make {obj} hand drawn",
               "convert to a sketch"),
        comparatives=("sketchier", "more like a sketch", "more like a drawing", "more hand drawn"),
        states=("sketched", "hand drawn", "pencil drawn", "sketchy"),
        nouns=("a pencil sketch", "a sketch effect", "a pencil drawing look", "pencil lines", "a graphite look",
               "a sketch filter", "a drawing effect", "charcoal lines"),
        looks=("like a pencil sketch", "like a pencil drawing", "like a graphite sketch", "like a charcoal drawing",
               "hand drawn", "like a sketchbook page"),
    ),
    "cartoon": Vocabulary(
        verbs=("cartoonify {obj}", "make {obj} a cartoon", "turn {obj} into a cartoon", "posterize {obj}",
               "reduce the colours to flat areas", "make {obj} look drawn like a comic", "comic-ify {obj}",
               "flatten the colours into bands", "turn {obj} into a comic", "make {obj} look animated",
               "toon {obj}", "cel shade {obj}"),
        comparatives=("more cartoonish", "more cartoony", "flatter in colour", "more like a comic",
                      "more posterized"),
        states=("cartoonish", "cartoony", "posterized", "comic style", "cel shaded", "animated"),
        nouns=("a cartoon effect", "a comic look", "a posterize effect", "cel shading", "a cartoon filter",
               "flat colours and outlines", "a comic book style", "a toon effect", "posterization"),
        looks=("like a cartoon", "like a comic book", "like an animated film", "like a cel shaded frame",
               "like a poster with few colours", "like a comic strip"),
    ),
    "film_grain": Vocabulary(
        verbs=("add grain to {obj}", "add film grain", "make {obj} grainy", "add noise to {obj}",
               "sprinkle grain over {obj}", "make {obj} noisy", "add a grain texture", "texture {obj} with grain",
               "add analogue grain", "give {obj} film grain", "add some noise"),
        comparatives=("grainier", "noisier", "more grainy", "more textured", "more noisy"),
        states=("grainy", "noisy", "speckled", "gritty"),
        nouns=("film grain", "grain", "noise", "a grain effect", "a grainy texture", "high iso noise",
               "grit", "a film grain texture", "luminance noise", "speckle"),
        looks=("grainy", "like high iso film", "like it was shot on grainy film", "like a noisy high iso shot",
               "gritty like film"),
    ),
}


def _pick(rng: random.Random, options: tuple[str, ...]) -> str:
    return options[rng.randrange(len(options))]


def _with_modifier(modifier: str, phrase: str) -> str:
    return f"{modifier} {phrase}".strip()


def _compose_one(vocabulary: Vocabulary, grade: Grade, rng: random.Random) -> str | None:
    """Return one sentence of the given grade, or None if the family has no words for the drawn form."""
    forms = [name for name in ("verbs", "comparatives", "states", "nouns", "looks") if getattr(vocabulary, name)]
    form = _pick(rng, tuple(forms))
    obj = _pick(rng, OBJECTS)
    if form == "verbs":
        action = _pick(rng, vocabulary.verbs).format(obj=obj)
        action = _pick(rng, VERB_MODIFIERS[grade]).format(x=action)
        return _pick(rng, FRAMES).format(x=action)
    if form == "comparatives":
        phrase = _with_modifier(_pick(rng, COMPARATIVE_MODIFIERS[grade]), _pick(rng, vocabulary.comparatives))
        return _pick(rng, ADJECTIVE_FRAMES).format(x=phrase, obj=obj)
    if form == "states":
        phrase = _with_modifier(_pick(rng, STATE_MODIFIERS[grade]), _pick(rng, vocabulary.states))
        return _pick(rng, ADJECTIVE_FRAMES).format(x=phrase, obj=obj)
    if form == "nouns":
        noun = _pick(rng, vocabulary.nouns)
        modifier = _pick(rng, NOUN_MODIFIERS[grade])
        if modifier and noun.startswith(("a ", "an ")):
            noun = noun.split(" ", 1)[1]
        return _pick(rng, NOUN_FRAMES).format(x=_with_modifier(modifier, noun), obj=obj)
    phrase = _with_modifier(_pick(rng, LOOK_MODIFIERS[grade]), _pick(rng, vocabulary.looks))
    return _pick(rng, LOOK_FRAMES).format(x=phrase, obj=obj)


@functools.cache
def held_out_texts() -> frozenset[str]:
    """Return the normalised texts of every evaluation and blind-test phrasing, which composed sentences avoid."""
    texts = {normalize_phrasing(p.text) for entry in FAMILY_PHRASINGS.values() for p in entry.eval}
    texts |= {normalize_phrasing(text) for entries in BLIND_TEST.values() for text, _ in entries}
    return frozenset(texts)


def compose_phrasings(family: str, count: int, seed: int = 0) -> tuple[Phrasing, ...]:
    """Return up to `count` distinct composed training phrasings of `family`, a third of each grade.

    Deterministic for a given seed. Raises KeyError for a family without a vocabulary.
    """
    vocabulary = VOCABULARY[family]
    rng = random.Random(f"{family}:{seed}")
    excluded = held_out_texts() | {normalize_phrasing(p.text) for p in FAMILY_PHRASINGS[family].train}
    grades: tuple[Grade, ...] = ("slight", "normal", "strong")
    seen: set[str] = set()
    phrasings: list[Phrasing] = []
    for attempt in range(count * 20):
        if len(phrasings) >= count:
            break
        grade = grades[attempt % 3]
        text = _compose_one(vocabulary, grade, rng)
        key = normalize_phrasing(text)
        if not key or key in seen or key in excluded:
            continue
        seen.add(key)
        phrasings.append(Phrasing(" ".join(text.split()), grade))
    return tuple(phrasings)
