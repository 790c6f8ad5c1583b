"""English phrasings for every edit family, and instructions that no family covers.

Each family has separate training and evaluation phrasings, so a model trained on the first set can be measured
on wording it has never seen. Every phrasing carries a grade for the edit strength its wording requests, and
the ground-truth edit for that phrasing is applied at that strength. The out-of-scope lists hold realistic editing
requests (object replacement, text, pose, cropping, painter styles) that none of the families can satisfy.

The module is plain data with no torch import, so the CLI and data scripts can import it cheaply.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal


Grade = Literal["slight", "normal", "strong"]

# Ordered from weakest to strongest.
GRADES: tuple[Grade, ...] = ("slight", "normal", "strong")


@dataclass(frozen=True)
class Phrasing:
    """An instruction a user might type, with the edit strength its wording requests."""

    text: str
    grade: Grade

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValueError(f"invalid grade {self.grade!r} for phrasing {self.text!r}: expected one of {GRADES}")
        if not self.text.strip():
            raise ValueError("invalid phrasing: text is empty or only whitespace")


@dataclass(frozen=True)
class FamilyPhrasings:
    """Label, description and training and evaluation phrasings of one edit family."""

    family: str
    title: str
    description: str
    train: tuple[Phrasing, ...]
    eval: tuple[Phrasing, ...]


def _graded(
    slight: tuple[str, ...] = (),
    normal: tuple[str, ...] = (),
    strong: tuple[str, ...] = (),
) -> tuple[Phrasing, ...]:
    return (
        tuple(Phrasing(text, "slight") for text in slight)
        + tuple(Phrasing(text, "normal") for text in normal)
        + tuple(Phrasing(text, "strong") for text in strong)
    )


# Edits that are either applied or not. Their phrasings are mostly "normal", and "slight" or "strong" mean a
# partial or complete blend with the original photo.
ALL_OR_NOTHING_FAMILIES: frozenset[str] = frozenset({"black_and_white", "invert", "pencil_sketch", "cartoon"})

# Training sets deliberately include one or two typos per family, mixed case and bare keywords, because users
# type that way. Evaluation sets use synonyms and sentence frames that never occur in training.
_FAMILIES: tuple[FamilyPhrasings, ...] = (
    FamilyPhrasings(
        family="brighter",
        title="Brighter",
        description="Raises the overall exposure so the photo looks as if it was taken with more light.",
        train=_graded(
            slight=("slightly brighter", "a bit brighter", "brighten it a little", "Make it a touch lighter"),
            normal=(
                "brighter",
                "make it brighter",
                "Brighten the photo",
                "increase the brightness",
                "more light",
                "raise the exposure",
                "lighten this image",
                "BRIGHTEN IT",
                "make the picture lighter",
                "brigher",
                "brighten up the scene",
            ),
            strong=("much brighter", "make it a lot brighter", "very bright", "way brighter please", "overexpose it"),
        ),
        eval=_graded(
            slight=("give it a subtle exposure lift", "nudge the light levels up a hair"),
            normal=("turn up the brightness", "make the shot less dim"),
            strong=("crank the brightness way up", "flood the image with light"),
        ),
    ),
    FamilyPhrasings(
        family="darker",
        title="Darker",
        description="Lowers the overall exposure so the photo looks as if it was taken with less light.",
        train=_graded(
            slight=("slightly darker", "a bit darker", "darken it a little", "a touch darker", "make it a tad darker"),
            normal=(
                "darker",
                "make it darker",
                "Darken the photo",
                "reduce the brightness",
                "lower the exposure",
                "DARKEN IT",
                "darken this image",
                "make the picture dimmer",
                "less light",
                "darkr",
            ),
            strong=("much darker", "make it a lot darker", "very dark", "darken it heavily", "way darker"),
        ),
        eval=_graded(
            slight=("knock the exposure down a hair", "dim it just a smidge"),
            normal=("turn down the brightness", "cut the exposure", "dim the shot"),
            strong=("plunge it into deep shadow", "drastically underexpose the picture"),
        ),
    ),
    FamilyPhrasings(
        family="warmer",
        title="Warmer",
        description="Shifts the white balance toward orange and yellow so the light looks warmer.",
        train=_graded(
            slight=(
                "slightly warmer",
                "a bit warmer",
                "warm it up a little",
                "a touch warmer",
                "add a hint of warmth",
            ),
            normal=(
                "warmer",
                "make it warmer",
                "Warm up the colours",
                "warmer tones",
                "add warmth",
                "more orange",
                "warm color temperature",
                "WARMER PLEASE",
                "make the white balance warmer",
                "warmr",
                "a warm look",
            ),
            strong=("much warmer", "make it a lot warmer", "very warm", "strongly warm tones", "way warmer"),
        ),
        eval=_graded(
            slight=("give it a faint amber cast", "nudge the tint a smidge toward yellow"),
            normal=("shift the white balance toward yellow", "give the photo a cosy amber tint"),
            strong=("bathe everything in heavy orange tones", "push the temperature far toward warm"),
        ),
    ),
    FamilyPhrasings(
        family="cooler",
        title="Cooler",
        description="Shifts the white balance toward blue so the light looks colder.",
        train=_graded(
            slight=(
                "slightly cooler",
                "a bit cooler",
                "cool it down a little",
                "a touch cooler",
                "add a hint of blue",
            ),
            normal=(
                "cooler",
                "make it cooler",
                "Cool down the colours",
                "cooler tones",
                "more blue",
                "cold color temperature",
                "COOLER PLEASE",
                "make the white balance cooler",
                "colder tones",
                "cooller",
                "a cool look",
            ),
            strong=("much cooler", "make it a lot cooler", "very cold tones", "strongly cool tones", "way cooler"),
        ),
        eval=_graded(
            slight=("give it a faint teal cast", "nudge the tint a smidge toward blue"),
            normal=("shift the white balance toward blue", "give the photo a chilly tint"),
            strong=("push the colours heavily toward blue", "push the temperature far toward cold"),
        ),
    ),
    FamilyPhrasings(
        family="vivid",
        title="Vivid",
        description="Increases colour saturation so the colours look richer and punchier.",
        train=_graded(
            slight=(
                "slightly more vivid",
                "a bit more saturated",
                "boost the colours a little",
                "a touch more saturation",
            ),
            normal=(
                "vivid",
                "make it more vivid",
                "increase saturation",
                "more colorful",
                "Saturate the colours",
                "vibrant colours",
                "VIVID COLORS",
                "punchy colours",
                "make the colors pop",
                "more vibrance",
                "saturatd colors",
            ),
            strong=(
                "much more vivid",
                "very saturated",
                "extremely vibrant colours",
                "crank up the saturation",
                "oversaturate it",
            ),
        ),
        eval=_graded(
            slight=("gently enrich the hues", "a faint boost in colour intensity"),
            normal=("richer colours", "make the hues bolder"),
            strong=("make every colour scream", "max out the chroma"),
        ),
    ),
    FamilyPhrasings(
        family="muted",
        title="Muted",
        description="Lowers colour saturation so the colours look softer and duller, but keeps some colour.",
        train=_graded(
            slight=(
                "slightly muted",
                "a bit less saturated",
                "tone down the colours a little",
                "a touch less colour",
            ),
            normal=(
                "muted",
                "muted colours",
                "make it less saturated",
                "desaturate the photo",
                "reduce saturation",
                "MUTED TONES",
                "softer, duller colours",
                "make the colors less vibrant",
                "subdued palette",
                "mutted colors",
            ),
            strong=(
                "much more muted",
                "very muted colours",
                "mute the colours a lot",
                "heavily desaturate but keep some colour",
                "much less saturated",
            ),
        ),
        eval=_graded(
            slight=("soften the hues faintly", "take the edge off the colour intensity just a smidge"),
            normal=("tame the colours", "make the hues calmer and dustier"),
            strong=("strip away most of the chroma", "drastically tone down every hue"),
        ),
    ),
    FamilyPhrasings(
        family="black_and_white",
        title="Black and white",
        description="Removes all colour so the photo shows only shades of grey.",
        train=_graded(
            slight=("nearly black and white", "almost greyscale with a hint of colour", "mostly monochrome"),
            normal=(
                "black and white",
                "make it black and white",
                "Black & white",
                "convert to grayscale",
                "greyscale",
                "monochrome",
                "B&W",
                "remove all colour",
                "turn this photo into a black and white picture",
                "make it monochrome",
                "BLACK AND WHITE PHOTO",
                "black and whte",
                "grayscale photo",
                "b/w please",
            ),
            strong=("pure black and white", "stark black and white", "completely monochrome, zero colour"),
        ),
        eval=_graded(
            slight=("leave just a trace of colour, otherwise grey",),
            normal=("drain all colour from the picture", "shades of grey only", "colourless photo"),
            strong=("strictly black, white and grey with no tint at all",),
        ),
    ),
    FamilyPhrasings(
        family="sepia",
        title="Sepia",
        description="Turns the photo into a brown-toned monochrome like an early photographic print.",
        train=_graded(
            slight=("slight sepia", "a bit of sepia", "light sepia tone", "a touch of sepia"),
            normal=(
                "sepia",
                "make it sepia",
                "sepia tone",
                "Sepia toned photo",
                "add a sepia filter",
                "brown monochrome",
                "SEPIA PLEASE",
                "turn this photo into a sepia print",
                "sepai",
                "give it a sepia look",
                "sepia effect",
            ),
            strong=("strong sepia", "heavy sepia tone", "very sepia", "full sepia"),
        ),
        eval=_graded(
            slight=("faint brown toning", "a whisper of umber tint"),
            normal=("brown-and-cream monochrome", "tone it in browns like a daguerreotype"),
            strong=("deep, rich brown toning throughout", "an intense sepia wash"),
        ),
    ),
    FamilyPhrasings(
        family="blur",
        title="Blur",
        description="Softens the whole photo so edges and fine detail become out of focus.",
        train=_graded(
            slight=("slight blur", "blur it a little", "a bit blurry", "a touch of blur"),
            normal=(
                "blur",
                "blur the photo",
                "make it blurry",
                "Gaussian blur",
                "add blur",
                "out of focus",
                "BLUR IT",
                "make it soft and unfocused",
                "blurr",
                "defocus the image",
                "blurry look",
            ),
            strong=(
                "heavy blur",
                "very blurry",
                "blur it a lot",
                "strong Gaussian blur",
                "make it extremely out of focus",
            ),
        ),
        eval=_graded(
            slight=("just barely soften the focus", "a faint smear of softness"),
            normal=("make it fuzzy", "lose the crisp focus"),
            strong=("blur it beyond recognition", "smear everything into mush"),
        ),
    ),
    FamilyPhrasings(
        family="sharpen",
        title="Sharpen",
        description="Increases edge contrast so fine detail looks crisper.",
        train=_graded(
            slight=("slightly sharper", "sharpen a little", "a bit crisper", "a touch of sharpening"),
            normal=(
                "sharpen",
                "sharpen the photo",
                "make it sharper",
                "more detail",
                "crisper",
                "increase sharpness",
                "SHARPEN IT",
                "make the edges crisp",
                "sharpn",
                "unsharp mask",
                "sharper look",
            ),
            strong=("much sharper", "sharpen it heavily", "very crisp", "strong sharpening", "way sharper"),
        ),
        eval=_graded(
            slight=("add a hint of edge definition", "gently enhance the fine texture"),
            normal=("bring out fine detail", "make it look more in focus"),
            strong=("boost the edge definition dramatically", "razor-sharp detail everywhere"),
        ),
    ),
    FamilyPhrasings(
        family="more_contrast",
        title="More contrast",
        description="Spreads the tones apart so shadows get deeper and highlights brighter.",
        train=_graded(
            slight=(
                "slightly more contrast",
                "a bit more contrast",
                "boost contrast a little",
                "a touch more contrast",
            ),
            normal=(
                "more contrast",
                "increase the contrast",
                "add contrast",
                "higher contrast",
                "make it contrasty",
                "punchier contrast",
                "MORE CONTRAST PLEASE",
                "deeper blacks and brighter whites",
                "contrast boost",
                "more contarst",
                "make the darks darker and the lights lighter",
            ),
            strong=(
                "much more contrast",
                "very high contrast",
                "crank up the contrast",
                "extreme contrast",
                "a lot more contrast",
            ),
        ),
        eval=_graded(
            slight=("gently deepen the shadows against the highlights", "a faint S-curve on the tones"),
            normal=("stronger tonal separation", "steepen the tone curve"),
            strong=("push the blacks and whites to the limit", "dramatic, hard-hitting tonal punch"),
        ),
    ),
    FamilyPhrasings(
        family="less_contrast",
        title="Less contrast",
        description="Pulls shadows and highlights toward the midtones for a flat, matte, faded look.",
        train=_graded(
            slight=(
                "slightly less contrast",
                "a bit less contrast",
                "reduce contrast a little",
                "a touch flatter",
            ),
            normal=(
                "less contrast",
                "lower the contrast",
                "reduce contrast",
                "flat look",
                "matte look",
                "make it flatter",
                "LOW CONTRAST",
                "soft contrast",
                "lift the blacks",
                "faded contrast",
                "less contrst",
            ),
            strong=(
                "much less contrast",
                "very flat",
                "very low contrast",
                "a lot less contrast",
                "heavy matte effect",
            ),
        ),
        eval=_graded(
            slight=("ease off the punch in the tones just slightly", "a faint matte finish"),
            normal=("compress the tonal range", "a washed-out matte finish"),
            strong=("flatten the tones almost completely", "make the shadows and highlights nearly the same grey"),
        ),
    ),
    FamilyPhrasings(
        family="vignette",
        title="Vignette",
        description="Darkens the corners and edges of the photo to draw the eye to the centre.",
        train=_graded(
            slight=("slight vignette", "a subtle vignette", "darken the corners a little", "light vignette"),
            normal=(
                "vignette",
                "add a vignette",
                "Vignette effect",
                "darken the corners",
                "dark edges",
                "VIGNETTE PLEASE",
                "darker corners",
                "shadowed border around the photo",
                "vingette",
                "add vignetting",
            ),
            strong=("heavy vignette", "strong vignette", "very dark corners", "darken the edges a lot"),
        ),
        eval=_graded(
            slight=("gently shade the frame edges", "a faint falloff toward the borders"),
            normal=("draw the eye to the centre with darker borders", "lens falloff at the edges"),
            strong=("deep black borders closing in on the centre", "an intense tunnel-like edge darkening"),
        ),
    ),
    FamilyPhrasings(
        family="invert",
        title="Invert",
        description="Replaces every colour with its opposite so the photo looks like a film negative.",
        train=_graded(
            slight=("partly invert the colours", "a faint negative effect"),
            normal=(
                "invert",
                "invert the colors",
                "Invert colours",
                "negative",
                "make it a negative",
                "photo negative",
                "INVERT IT",
                "reverse the colours",
                "turn this photo into a film negative",
                "color inversion",
                "inverted image",
                "invert colurs",
                "flip the colours to their opposites",
                "negative effect",
            ),
            strong=("fully invert the colours", "complete photo negative", "totally invert everything"),
        ),
        eval=_graded(
            slight=("a half-strength negative blended with the original",),
            normal=(
                "swap every colour for its complement",
                "make light areas dark and dark areas light",
                "show it as a negative",
            ),
            strong=("a total, hard inversion of every pixel",),
        ),
    ),
    FamilyPhrasings(
        family="night",
        title="Night",
        description="Turns the scene into a dark, blue-tinted night shot.",
        train=_graded(
            slight=("a hint of night", "a bit of a night look", "a touch of night-time mood", "slightly nighttime"),
            normal=(
                "night",
                "make it night",
                "night time",
                "Turn it into night",
                "nighttime scene",
                "at night",
                "NIGHT SHOT",
                "make it look like it was taken at night",
                "turn this photo into a night scene",
                "moonlight",
                "nite",
                "day to night",
            ),
            strong=(
                "deep night",
                "pitch dark night",
                "very dark night",
                "middle of the night",
                "full night, dark blue everywhere",
            ),
        ),
        eval=_graded(
            slight=("early evening twilight", "the first blue of dusk"),
            normal=("after dark", "as if the sun went down hours ago"),
            strong=("the dead of night", "midnight darkness with deep blue shadows"),
        ),
    ),
    FamilyPhrasings(
        family="snowy",
        title="Snowy",
        description="Turns the scene into a winter day with falling snow.",
        train=_graded(
            slight=("light snow", "a little snow", "a few snowflakes", "slightly snowy", "a dusting of snow"),
            normal=(
                "snowy",
                "make it snowy",
                "snow",
                "add snow",
                "Snowfall",
                "winter scene",
                "make it look like winter",
                "SNOWING",
                "turn this photo into a winter scene",
                "falling snow",
                "snowy wether",
                "let it snow",
            ),
            strong=("heavy snow", "blizzard", "a lot of snow", "very snowy", "snowstorm", "deep snow everywhere"),
        ),
        eval=_graded(
            slight=("a light flurry", "gentle flakes drifting down"),
            normal=("a wintry day with flakes falling", "as if it were snowing"),
            strong=("whiteout conditions", "a fierce winter storm with thick flakes"),
        ),
    ),
    FamilyPhrasings(
        family="rainy",
        title="Rainy",
        description="Adds rain streaks and wet, dull light as on a rainy day.",
        train=_graded(
            slight=("light rain", "a little rain", "drizzle", "slightly rainy"),
            normal=(
                "rainy",
                "make it rainy",
                "rain",
                "add rain",
                "raining",
                "a rainy day",
                "RAINY WEATHER",
                "wet and rainy",
                "rain streaks",
                "turn this photo into a rainy scene",
                "rainny",
                "make it look like it's raining",
            ),
            strong=("heavy rain", "downpour", "pouring rain", "very rainy", "a rainstorm", "torrential rain"),
        ),
        eval=_graded(
            slight=("a soft sprinkle of raindrops", "a few drops falling"),
            normal=("a wet, overcast afternoon with showers", "a showery day"),
            strong=("a violent thunderstorm with sheets of water", "rain bucketing down"),
        ),
    ),
    FamilyPhrasings(
        family="foggy",
        title="Foggy",
        description="Covers the scene in haze or mist that fades distant objects.",
        train=_graded(
            slight=("light fog", "a little haze", "slight mist", "a bit foggy", "a thin mist"),
            normal=(
                "foggy",
                "make it foggy",
                "fog",
                "add fog",
                "mist",
                "misty",
                "Hazy",
                "FOGGY DAY",
                "a misty morning",
                "turn this photo into a foggy scene",
                "foogy",
                "add haze",
            ),
            strong=("thick fog", "dense fog", "very foggy", "heavy mist", "pea-soup fog"),
        ),
        eval=_graded(
            slight=("a faint veil of haze", "a wisp of vapour in the air"),
            normal=("shroud the scene in vapour", "low cloud at ground level"),
            strong=("so much fog you can barely see", "fog so thick the background disappears"),
        ),
    ),
    FamilyPhrasings(
        family="golden_hour",
        title="Golden hour",
        description="Relights the scene with the warm, low sun of the hour before sunset.",
        train=_graded(
            slight=(
                "a hint of golden hour",
                "slight golden light",
                "a touch of sunset glow",
                "a bit more golden",
            ),
            normal=(
                "golden hour",
                "make it golden hour",
                "sunset light",
                "golden light",
                "warm low sun",
                "GOLDEN HOUR LOOK",
                "evening sun",
                "magic hour",
                "sunset lighting",
                "turn this photo into a golden hour scene",
                "golden houre",
                "late afternoon sun",
            ),
            strong=(
                "intense golden hour",
                "deep golden sunset glow",
                "very golden",
                "strong sunset light",
            ),
        ),
        eval=_graded(
            slight=("faint honey-coloured evening light", "a gentle late-day glow"),
            normal=("shot just before sunset", "bathe it in low, warm sunlight"),
            strong=("blazing orange sunset light drenching the scene", "overwhelmingly golden late sun"),
        ),
    ),
    FamilyPhrasings(
        family="autumn",
        title="Autumn",
        description="Recolours foliage into autumn yellows, oranges and reds.",
        train=_graded(
            slight=(
                "a hint of autumn",
                "slightly autumnal",
                "a touch of fall colours",
                "a few yellow leaves",
            ),
            normal=(
                "autumn",
                "make it autumn",
                "fall",
                "autumnal",
                "fall foliage",
                "autumn colors",
                "Autumn leaves",
                "AUTUMN LOOK",
                "turn this photo into an autumn scene",
                "make it look like fall",
                "autum",
                "orange and red leaves",
            ),
            strong=(
                "deep autumn",
                "very autumnal",
                "peak fall foliage",
                "full autumn, everything orange and red",
            ),
        ),
        eval=_graded(
            slight=("leaves just starting to turn", "the first trees changing colour"),
            normal=("October foliage", "give the trees their harvest-season reds and golds"),
            strong=("a blaze of crimson and amber on every tree", "late-October trees at full colour"),
        ),
    ),
    FamilyPhrasings(
        family="vintage_film",
        title="Vintage film",
        description="Makes the photo look like a faded print from old analogue film.",
        train=_graded(
            slight=(
                "a slight vintage look",
                "a bit retro",
                "a touch of film look",
                "a subtle vintage film feel",
            ),
            normal=(
                "vintage",
                "vintage film",
                "make it look vintage",
                "old film photo",
                "retro film look",
                "Faded film",
                "70s photo",
                "analog film look",
                "VINTAGE LOOK",
                "turn this photo into an old film photograph",
                "vintgae",
                "like an old Kodak print",
            ),
            strong=(
                "very vintage",
                "heavily faded old film",
                "strong retro film look",
                "extremely old and faded photo",
            ),
        ),
        eval=_graded(
            slight=("a light nostalgic analogue tint", "a whisper of expired-stock character"),
            normal=("a throwback snapshot from a family album", "nostalgic analogue print"),
            strong=("an ancient, badly faded print", "worn-out decades-old snapshot"),
        ),
    ),
    FamilyPhrasings(
        family="pencil_sketch",
        title="Pencil sketch",
        description="Redraws the photo as grey pencil lines and shading on paper.",
        train=_graded(
            slight=("a light pencil sketch effect", "a subtle sketch look"),
            normal=(
                "pencil sketch",
                "make it a pencil sketch",
                "sketch",
                "pencil drawing",
                "Turn into a sketch",
                "graphite drawing",
                "hand-drawn sketch",
                "PENCIL SKETCH STYLE",
                "turn this photo into a pencil drawing",
                "line drawing",
                "sketch it",
                "pencil skech",
                "make it look hand drawn in pencil",
            ),
            strong=("heavy pencil sketch", "a bold, dark pencil sketch", "fully pencil-drawn"),
        ),
        eval=_graded(
            slight=("a delicate hint of graphite shading",),
            normal=(
                "an artist's study of this scene in graphite",
                "render it like a page from a sketchbook",
                "as if drawn by hand with a soft 2B lead",
            ),
            strong=("dense, heavy graphite strokes everywhere",),
        ),
    ),
    FamilyPhrasings(
        family="cartoon",
        title="Cartoon",
        description="Flattens the photo into a few bold colours with dark outlines, like a cartoon or comic.",
        train=_graded(
            slight=("slightly cartoonish", "a subtle cartoon look", "a light posterize"),
            normal=(
                "cartoon",
                "make it a cartoon",
                "cartoonify",
                "comic style",
                "cartoon style",
                "Posterize",
                "comic book look",
                "CARTOON LOOK",
                "turn this photo into a cartoon",
                "toon shading",
                "cel shaded",
                "cartoon effect",
                "carton style",
            ),
            strong=("heavy cartoon effect", "very cartoony", "full comic book style"),
        ),
        eval=_graded(
            slight=("a gentle comic-art flavour",),
            normal=(
                "flat colours with bold ink outlines",
                "make it look like an animated TV show",
                "reduce it to a few flat colour bands",
            ),
            strong=("exaggerated, loud comic-panel rendering",),
        ),
    ),
    FamilyPhrasings(
        family="film_grain",
        title="Film grain",
        description="Adds fine random noise like the grain of high-speed film.",
        train=_graded(
            slight=("slight grain", "a little film grain", "a bit of noise", "subtle grain"),
            normal=(
                "film grain",
                "add grain",
                "add film grain",
                "grainy",
                "add noise",
                "Noisy",
                "make it grainy",
                "FILM GRAIN EFFECT",
                "grain texture",
                "turn this photo into a grainy film shot",
                "film grian",
                "high ISO noise",
            ),
            strong=("heavy grain", "very grainy", "lots of noise", "strong film grain", "extremely noisy"),
        ),
        eval=_graded(
            slight=("a whisper of fine speckle", "a faint gritty texture"),
            normal=("make it look shot on fast film", "sprinkle random speckles across the image"),
            strong=("thick, coarse grain throughout", "bury the picture in speckle"),
        ),
    ),
)

FAMILY_PHRASINGS: dict[str, FamilyPhrasings] = {entry.family: entry for entry in _FAMILIES}

# Families whose edits pull in opposite directions. A request that names both sides is contradictory.
CONFLICTING_PAIRS: tuple[tuple[str, str], ...] = (
    ("brighter", "darker"),
    ("warmer", "cooler"),
    ("blur", "sharpen"),
    ("vivid", "muted"),
    ("more_contrast", "less_contrast"),
)

# Requests that no family covers. Use the calibration list to set a rejection threshold and the test list, which
# shares no entry with it, to measure how well that threshold rejects unseen requests.
OUT_OF_SCOPE_CALIBRATION: tuple[str, ...] = (
    "replace the dog with a cat",
    "remove the person on the left",
    "add a hat to the man",
    "make him smile",
    "write hello on the wall",
    "crop to a square",
    "rotate 90 degrees",
    "upscale to 4k",
    "swap her face with mine",
    "replace the background with a beach",
    "paint it in the style of Van Gogh",
    "remove the watermark",
    "change the text on the sign to OPEN",
    "make her hair red",
    "put sunglasses on him",
    "make the car blue",
    "remove the power lines",
    "make him look older",
    "open his eyes",
    "add a second person next to her",
    "resize to 800 by 600",
    "flip horizontally",
    "straighten the horizon",
    "remove red eye",
    "make the person thinner",
    "turn the cat to face the camera",
    "add a birthday cake on the table",
    "erase the tourists in the background",
    "make it look like a Picasso painting",
    "give the woman a ponytail",
)

OUT_OF_SCOPE_TEST: tuple[str, ...] = (
    "turn the horse into a zebra",
    "remove the car from the driveway",
    "add a dragon flying overhead",
    "make her laugh",
    "change his shirt to a suit",
    "put a crown on the dog",
    "crop out the left half",
    "rotate it upside down",
    "make the image 2x larger",
    "enhance the resolution",
    "swap the faces of the two people",
    "put me on the moon",
    "replace the background with an office",
    "in the style of Monet",
    "like a painting by Rembrandt",
    "change the date on the poster to 2025",
    "translate the sign into English",
    "remove the text",
    "write 'happy birthday' across the top",
    "add a logo in the corner",
    "make him raise his arms",
    "make her look surprised",
    "give him a beard",
    "remove his glasses",
    "make the dog bigger",
    "move the tree to the right",
    "add a boat on the lake",
    "delete the trash can",
    "replace the apples with oranges",
    "make the building taller",
    "add more people to the crowd",
    "remove the photobomber",
    "turn the man into a woman",
    "make the kid look like a superhero",
    "change the eye color to green",
    "whiten her teeth",
    "remove the scar on his cheek",
    "mirror the image",
    "extend the picture to the right",
    "zoom in on the face",
    "cut out the person and make the background transparent",
    "add a speech bubble saying hi",
    "make the cat wear a bow tie",
    "paint the walls yellow",
    "make the car look new",
    "replace the mountains with the ocean",
    "put a cup of coffee in his hand",
    "add a caption at the bottom",
    "convert to PNG",
    "make it look like a Salvador Dali painting",
)

# Negative examples for training the out-of-scope classifier. Disjoint from both lists above, so those stay
# untouched for calibration and for the reported flag rate.
OUT_OF_SCOPE_TRAIN: tuple[str, ...] = (
    "swap the horse for a zebra",
    "put a hat on the man",
    "erase the street lamp",
    "delete the car on the left",
    "add a rainbow unicorn in the sky",
    "make the woman look older",
    "turn his frown into a grin",
    "give her long red hair",
    "add sunglasses to everyone",
    "erase the tourists from the beach",
    "place a boat on the lake",
    "translate the menu into french",
    "label the mountains",
    "write happy birthday in the corner",
    "put my logo on it",
    "add a watermark",
    "trim the edges off",
    "crop out the left third",
    "make the file smaller in pixels",
    "rotate ninety degrees clockwise",
    "flip it horizontally",
    "fix the tilted camera angle",
    "double the pixel count",
    "make it higher resolution",
    "convert it to a pdf",
    "compress the file size",
    "set the scene on the moon",
    "put the subject in front of the eiffel tower",
    "put my face on his body",
    "make the cat a dog",
    "turn the apple into a pear",
    "add two floors to the house",
    "add more windows to the house",
    "remove the wrinkles from his shirt",
    "make her smile brighter teeth",
    "remove the red eye",
    "make him look thinner",
    "give the dog a bow tie",
    "close her eyes",
    "open the door",
    "make the person wave",
    "have them look at the camera",
    "shift the bench closer to the lake",
    "duplicate the bird",
    "make the river flow the other way",
    "add a second moon",
    "paint it in the style of monet",
    "make it look like a picasso",
    "in the style of studio ghibli",
    "like a rembrandt portrait",
    "turn it into a 3d render",
    "make it pixel art",
    "convert it into a lego scene",
    "turn the photo into a video",
    "animate the clouds",
    "add background music",
    "what is in this picture",
    "describe the image",
    "how many people are there",
    "count the cars",
    "tell me a joke",
    "undo the last edit",
    "save as png",
    "print this photo",
    "send it to my phone",
    "put a frame around it",
    "make a collage with four copies",
    "add a speech bubble",
    "put a cat on the table",
    "remove the fence",
    "change the shirt to blue",
    "paint the car red",
    "make her dress green",
    "recolor the door yellow",
    "fix the crooked teeth",
    "add a tattoo on his arm",
    "give him a moustache",
    "shave his head",
    "add fireworks over the city",
    "put balloons in the sky",
)


_WHITESPACE = re.compile(r"\s+")


def normalize_phrasing(text: str) -> str:
    """Casefold text, collapse runs of whitespace and strip surrounding whitespace and punctuation.

    The tests treat two phrasings with the same normalised form as duplicates.
    """
    collapsed = _WHITESPACE.sub(" ", text.casefold())
    return collapsed.strip(string.whitespace + string.punctuation)


def family_names() -> list[str]:
    """Return the family keys in their canonical order."""
    return list(FAMILY_PHRASINGS)


def training_phrasings() -> list[tuple[str, Phrasing]]:
    """Return (family, phrasing) for every training phrasing of every family."""
    return [(entry.family, phrasing) for entry in FAMILY_PHRASINGS.values() for phrasing in entry.train]


def eval_phrasings() -> list[tuple[str, Phrasing]]:
    """Return (family, phrasing) for every evaluation phrasing of every family."""
    return [(entry.family, phrasing) for entry in FAMILY_PHRASINGS.values() for phrasing in entry.eval]
