"""General text about the world, written by the simulator.

The default backbone LLM is first pretrained on this text so that it plays the
part of a general-purpose LLM: it knows which dishes are hot or cold, spicy,
breakfast food or late-night food, which regions they come from and what
weather feels like -- but nothing about particular shops or users, which is
what continual pretraining adds.
"""

from __future__ import annotations

import numpy as np

from larr.config import RealismConfig
from larr.world import catalog as cat
from larr.world import wording as wd
from larr.world.scene import TEMPERATURE_BANDS, TIME_SLOTS

_TEMP_WORDS = {"hot": "served hot", "warm": "served warm", "cold": "served cold"}


def _dish_sentences(dish: cat.Dish, cuisine: cat.Cuisine) -> list[str]:
    out = [f"{dish.name} is {dish.description}.", f"{dish.name} is {_TEMP_WORDS[dish.temp]}."]
    if dish.soup:
        out.append(f"{dish.name} is a soup dish that warms you up.")
    if dish.spicy >= 0.7:
        out.append(f"{dish.name} is very spicy.")
    elif dish.spicy >= 0.4:
        out.append(f"{dish.name} is a little spicy.")
    if dish.breakfast:
        out.append(f"people eat {dish.name} for breakfast.")
    if dish.late_night:
        out.append(f"{dish.name} is a popular late night snack.")
    if dish.sweet:
        out.append(f"{dish.name} tastes sweet.")
    if dish.temp == "cold":
        out.append(f"on a hot day {dish.name} is refreshing.")
    if dish.temp == "hot" and dish.soup:
        out.append(f"on a cold or rainy day {dish.name} is comforting.")
    if cuisine.region:
        out.append(f"{dish.name} is a specialty of {cuisine.region}.")
    return out


def general_text(region_names: list[str], realism: RealismConfig | None = None,
                 rng: np.random.Generator | None = None) -> list[str]:
    """One document per dish, per region and per weather/temperature word; with ``realism`` (the realistic
    variant) the same relations in varied wording (:func:`realistic_general_text`)."""
    if realism is not None:
        return realistic_general_text(region_names, realism, rng if rng is not None else np.random.default_rng(0))
    docs: list[str] = []
    for cuisine in cat.CUISINES:
        for dish in cuisine.dishes:
            docs.append(" ".join(_dish_sentences(dish, cuisine)))
        docs.append(f"{cuisine.label} food includes " + ", ".join(d.name for d in cuisine.dishes) + ".")
    for region in cat.REGIONS:
        if region.name not in region_names:
            continue
        local = [c for c in cat.CUISINES if c.region == region.name]
        text = f"{region.name} has districts such as {', '.join(region.districts[:4])}."
        if local:
            text += f" Visitors to {region.name} like to try local food such as " + ", ".join(
                d.name for d in local[0].dishes[:3]) + "."
        climate = "hot" if region.mean_temp_c >= 28 else "cold" if region.mean_temp_c <= 10 else "mild"
        text += f" The climate of {region.name} is {climate}."
        docs.append(text)
    docs += [
        "when it is sunny and hot people want cold drinks, ice cream and cold noodles.",
        "when it rains people stay in and order hot soup, congee and hot pot.",
        "heavy rain makes people order delivery from nearby shops.",
        "snow and freezing weather make hot stew and hot pot feel good.",
        "breakfast is eaten in the early morning: congee, buns, soy milk and pancakes.",
        "late at night people order barbecue skewers, fried chicken and noodle soup.",
        "travellers like to try the local specialties of the city they visit.",
    ]
    for _, band in TEMPERATURE_BANDS:
        docs.append(f"a {band} day calls for " + ("cold food and iced drinks." if band in ("warm", "hot", "scorching")
                                                  else "hot food and warm soup."))
    return docs


# --- the realistic variant -------------------------------------------------------------------------------
# attribute -> sentence templates stating it ({a}: a name of the dish); the scene words (weather, temperature
# bands, meal slots) appear here on purpose: this is what links them to dishes the listings only imply.
_FACTS: dict[str, tuple[str, ...]] = {
    "soup": ("{a} comes in a bowl of broth and warms you up.", "on a wet, chilly evening {a} hits the spot.",
             "{a} is comforting when it rains or snows.", "nothing beats {a} in freezing weather.",
             "people order {a} on cold, rainy days.", "{a} is a brothy dish for a cool night.",
             "in heavy rain a bowl of {a} feels good."),
    "hot": ("{a} is eaten hot.", "{a} arrives steaming.", "{a} is best while it is still hot.",
            "{a} is a warm dish for a cold day."),
    "cold": ("{a} is eaten cold.", "{a} cools you down on a scorching afternoon.", "{a} is best on a hot day.",
             "{a} is a chilled treat for warm weather.", "when it is sunny and hot people want {a}.",
             "{a} is refreshing in the summer heat."),
    "breakfast": ("{a} is a breakfast food.", "people have {a} in the morning.",
                  "commuters grab {a} before work.", "{a} is what many people eat for breakfast.",
                  "early in the day, {a} is a favourite."),
    "late_night": ("{a} is a late night snack.", "night owls order {a} after midnight.",
                   "{a} is popular late at night.", "after a night out people want {a}."),
    "spicy": ("{a} is very spicy.", "{a} is fiery with chili.", "{a} burns with chili and peppercorn.",
              "{a} is for people who love spicy food."),
    "mild_spicy": ("{a} is a little spicy.", "{a} has a mild chili kick."),
    "sweet": ("{a} tastes sweet.", "{a} is a sweet treat.", "people with a sweet tooth like {a}."),
}
_SCENE_DOCS: tuple[str, ...] = (
    "when it is sunny and hot people want iced drinks, shaved ice and chilled noodles.",
    "a scorching afternoon sends people to milk tea, smoothies and ice cream.",
    "in summer heat nobody wants a steaming pot; salads, soba and cold drinks sell.",
    "when it rains people stay in and order broth, congee and hotpot.",
    "light rain or heavy rain, a bowl of noodles in stock feels right.",
    "heavy rain makes people order delivery from nearby shops.",
    "rainy days are for stews, wonton soup and beef noodles.",
    "snow and freezing weather make a bubbling hotpot or a stew feel good.",
    "on a cold day people want something warm: lamb soup, porridge, dumplings in broth.",
    "breakfast is eaten in the early morning: congee, buns, soy milk, jianbing and youtiao.",
    "in the morning rush people grab baozi, egg crepes and soybean milk.",
    "late at night people order barbecue skewers, crayfish, fried chicken and noodle soup.",
    "after midnight the grills are busy: chuanr, oysters and a cold beer.",
    "travellers like to try the local food of the city they visit.",
    "out of home area, travelling, people look for the dishes the place is famous for.",
    "at lunch office workers order rice bowls, noodles and fast food.",
    "afternoon tea means coffee, milk tea, cakes and pastries.",
)


def _dish_aliases(dish: cat.Dish) -> tuple[str, ...]:
    names = wd.DISH_WORDING[dish.name][0]
    return names if dish.name in names else (dish.name, *names)


def _realistic_dish_doc(dish: cat.Dish, cuisine: cat.Cuisine, rng: np.random.Generator) -> str:
    names = _dish_aliases(dish)
    a = wd.pick(rng, names)
    plain = wd.DISH_WORDING[dish.name][1]
    out = [f"{a}: {wd.pick(rng, plain)}."]
    other = [n for n in names if n != a]
    if other:
        out.append(f"{a} is also called {wd.pick(rng, tuple(other))}.")
    attrs = [k for k, on in (("soup", dish.soup), ("hot", dish.temp == "hot"), ("cold", dish.temp == "cold"),
                             ("breakfast", dish.breakfast), ("late_night", dish.late_night),
                             ("spicy", dish.spicy >= 0.7), ("mild_spicy", 0.4 <= dish.spicy < 0.7),
                             ("sweet", dish.sweet)) if on]
    for k in attrs:
        for t in rng.choice(_FACTS[k], size=min(2, len(_FACTS[k])), replace=False):
            out.append(str(t).format(a=wd.pick(rng, names)))
    if cuisine.region:
        nick = wd.pick(rng, wd.REGION_NICKNAMES[cuisine.region])
        out.append(wd.pick(rng, (f"{a} comes from {cuisine.region}.", f"{a} is a {cuisine.region} classic.",
                                 f"{nick} is famous for {a}.", f"visitors to {cuisine.region} should try {a}.")))
    rng.shuffle(out)
    return " ".join(out)


def realistic_general_text(region_names: list[str], realism: RealismConfig, rng: np.random.Generator) -> list[str]:
    """The world knowledge of the realistic variant: the keyword variant's relations (which dishes are hot,
    cold, brothy, morning or night food, spicy, sweet, from where; what weather and meal slots call for),
    each in several wordings over the dishes' synonyms, plus which names, cuisine labels and nicknames
    mean the same thing -- so a model pretrained on it can read the listings' implied cues."""
    docs: list[str] = []
    for cuisine in cat.CUISINES:
        for dish in cuisine.dishes:
            docs += [_realistic_dish_doc(dish, cuisine, rng) for _ in range(realism.general_docs_per_dish)]
        labels = wd.CUISINE_LABELS[cuisine.name]
        docs.append(f"{wd.pick(rng, labels)} places serve " + ", ".join(
            wd.pick(rng, _dish_aliases(d)) for d in cuisine.dishes) + ".")
        docs.append(" ".join(f"{x} means {cuisine.label} food." for x in labels if x != cuisine.label))
        if cuisine.region:
            docs.append(f"{labels[0]} food comes from {cuisine.region}.")
    for region in cat.REGIONS:
        if region.name not in region_names:
            continue
        nicks = wd.REGION_NICKNAMES[region.name]
        text = f"{region.name} ({', '.join(nicks)}) has districts such as {', '.join(region.districts[:4])}."
        local = [c for c in cat.CUISINES if c.region == region.name]
        if local:
            dishes = [wd.pick(rng, _dish_aliases(d)) for d in local[0].dishes[:3]]
            text += f" Visitors to {wd.pick(rng, nicks)} like to try local food such as {', '.join(dishes)}."
        climate = "hot" if region.mean_temp_c >= 28 else "cold" if region.mean_temp_c <= 10 else "mild"
        text += f" The climate of {region.name} is {climate}."
        docs.append(text)
    docs += list(_SCENE_DOCS)
    for _, band in TEMPERATURE_BANDS:
        warm = band in ("warm", "hot", "scorching")
        pool = [d for c in cat.CUISINES for d in c.dishes if (d.temp == "cold" if warm else d.soup)]
        picks = [wd.pick(rng, _dish_aliases(pool[i])) for i in rng.choice(len(pool), size=3, replace=False)]
        docs.append(f"a {band} day calls for " + ", ".join(picks) + ".")
    for slot in TIME_SLOTS:
        key = {"breakfast": "breakfast", "late night": "late_night"}.get(slot)
        if key is None:
            continue
        pool = [d for c in cat.CUISINES for d in c.dishes if getattr(d, key)]
        picks = [wd.pick(rng, _dish_aliases(pool[i])) for i in rng.choice(len(pool), size=4, replace=False)]
        docs.append(f"{slot}: " + ", ".join(picks) + ".")
    return docs
