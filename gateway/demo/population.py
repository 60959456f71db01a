"""A synthetic floating population: migrant households living in Shenzhen.

Everything here is invented, deterministically from a seed: households of
one or two working adults from Sichuan, Henan or Hunan, often with
school-age children, who moved to Shenzhen (440300). Each person gets a
plausible Chinese name and a GB 11643 resident identity number that passes
every check (address code of the birth county, a real birth date, sequence
code odd for men and even for women, ISO 7064 MOD 11-2 check character).

Names and identity numbers are personal data: the demo puts them only into
record payloads, which the gateway encrypts; the ledger sees pseudonyms.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

from crypto.pseudonym import check_character

#: The destination city (GB/T 2260): where every household lives and works.
SHENZHEN: Final = "440300"
#: The origin city with its own departments' officers in the demo consortium.
CHENGDU: Final = "510100"


@dataclass(frozen=True)
class OriginCity:
    """A prefecture-level city of origin and some of its county-level divisions."""

    code: str
    name: str
    province: str
    counties: tuple[tuple[str, str], ...]


#: Origin cities (GB/T 2260 codes), weighted towards Chengdu, whose officers the demo has.
ORIGINS: Final[tuple[tuple[OriginCity, int], ...]] = (
    (
        OriginCity(
            CHENGDU,
            "成都市",
            "四川省",
            (
                ("510104", "锦江区"),
                ("510105", "青羊区"),
                ("510112", "龙泉驿区"),
                ("510121", "金堂县"),
                ("510129", "大邑县"),
                ("510131", "蒲江县"),
            ),
        ),
        8,
    ),
    (
        OriginCity(
            "511300",
            "南充市",
            "四川省",
            (
                ("511302", "顺庆区"),
                ("511321", "南部县"),
                ("511322", "营山县"),
                ("511381", "阆中市"),
            ),
        ),
        2,
    ),
    (OriginCity("510700", "绵阳市", "四川省", (("510703", "涪城区"), ("510722", "三台县"))), 1),
    (OriginCity("410100", "郑州市", "河南省", (("410102", "中原区"), ("410122", "中牟县"))), 1),
    (
        OriginCity(
            "411300",
            "南阳市",
            "河南省",
            (("411302", "宛城区"), ("411323", "西峡县"), ("411325", "内乡县")),
        ),
        2,
    ),
    (
        OriginCity(
            "411500",
            "信阳市",
            "河南省",
            (("411502", "浉河区"), ("411522", "光山县"), ("411524", "商城县")),
        ),
        2,
    ),
    (
        OriginCity(
            "411600",
            "周口市",
            "河南省",
            (("411602", "川汇区"), ("411622", "西华县"), ("411628", "鹿邑县")),
        ),
        2,
    ),
    (
        OriginCity(
            "430400",
            "衡阳市",
            "湖南省",
            (("430405", "珠晖区"), ("430421", "衡阳县"), ("430426", "祁东县")),
        ),
        2,
    ),
    (OriginCity("431000", "郴州市", "湖南省", (("431002", "北湖区"), ("431021", "桂阳县"))), 1),
    (OriginCity("430500", "邵阳市", "湖南省", (("430502", "双清区"), ("430523", "邵阳县"))), 1),
)

#: Shenzhen districts: (code, name, streets).
DISTRICTS: Final = (
    ("440303", "罗湖区", ("东门街道", "笋岗街道", "清水河街道")),
    ("440304", "福田区", ("华强北街道", "梅林街道", "沙头街道")),
    ("440305", "南山区", ("粤海街道", "西丽街道", "桃源街道")),
    ("440306", "宝安区", ("福永街道", "沙井街道", "西乡街道", "松岗街道")),
    ("440307", "龙岗区", ("坂田街道", "布吉街道", "横岗街道", "平湖街道")),
    ("440309", "龙华区", ("观澜街道", "大浪街道", "民治街道")),
    ("440310", "坪山区", ("坑梓街道", "石井街道")),
    ("440311", "光明区", ("公明街道", "凤凰街道")),
)

SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万"
)
_MALE_GIVEN: Final = "伟强军磊勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林洋勋建国志文"
_FEMALE_GIVEN: Final = "芳娜敏静丽艳娟霞秀燕玲桂琳萍红梅莉兰凤洁琴云雪婷倩慧颖佳欣怡悦晶"
_CHILD_GIVEN: Final = "子梓涵睿轩宇博一诺欣怡雨萱思彤可馨浩然俊熙晨曦嘉乐若溪铭泽"


@dataclass(frozen=True)
class Person:
    """One synthetic person."""

    identity_number: str
    name: str
    sex: str  # "M" or "F"
    birth_date: date
    origin: OriginCity
    birth_county: str
    is_child: bool
    relationship: str  # "head", "spouse", "child"

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


@dataclass
class Household:
    """A migrant family sharing one rented home in Shenzhen."""

    index: int
    origin: OriginCity
    district_code: str
    address: str
    arrived_on: date
    adults: list[Person] = field(default_factory=list)
    children: list[Person] = field(default_factory=list)

    @property
    def members(self) -> list[Person]:
        return [*self.adults, *self.children]

    @property
    def head(self) -> Person:
        return self.adults[0]


def identity_number(county: str, born: date, sequence: int) -> str:
    """A GB 11643 number: county code, birth date, 3-digit sequence, check character."""
    first17 = f"{county}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


class PopulationGenerator:
    """Deterministic households for a seed, with people's ages relative to ``today``."""

    def __init__(self, seed: int, today: date) -> None:
        self.random = random.Random(seed)  # noqa: S311 - invented data, not secrets
        self.today = today
        self._numbers: set[str] = set()

    def _years_ago(self, years: int) -> date:
        try:
            return self.today.replace(year=self.today.year - years)
        except ValueError:  # 29 February
            return self.today.replace(year=self.today.year - years, day=28)

    def _birth_date(self, min_age: int, max_age: int) -> date:
        """A birth date giving an age of ``min_age`` to ``max_age`` years today."""
        latest = self._years_ago(min_age)
        earliest = self._years_ago(max_age + 1) + timedelta(days=1)
        return earliest + timedelta(days=self.random.randrange((latest - earliest).days + 1))

    def _number(self, county: str, born: date, sex: str) -> str:
        while True:
            sequence = self.random.randrange(1, 999)
            if (sequence % 2 == 1) != (sex == "M"):
                sequence += 1 if sequence < 998 else -1
            number = identity_number(county, born, sequence)
            if number not in self._numbers:
                self._numbers.add(number)
                return number

    def _given(self, pool: str) -> str:
        length = 2 if self.random.random() < 0.7 else 1
        return "".join(self.random.choice(pool) for _ in range(length))

    def person(
        self,
        origin: OriginCity,
        *,
        sex: str,
        surname: str,
        ages: tuple[int, int],
        relationship: str,
    ) -> Person:
        county, _ = self.random.choice(origin.counties)
        born = self._birth_date(*ages)
        child = relationship == "child"
        pool = _CHILD_GIVEN if child else (_MALE_GIVEN if sex == "M" else _FEMALE_GIVEN)
        return Person(
            identity_number=self._number(county, born, sex),
            name=surname + self._given(pool),
            sex=sex,
            birth_date=born,
            origin=origin,
            birth_county=county,
            is_child=child,
            relationship=relationship,
        )

    def household(self, index: int, size_limit: int) -> Household:
        """One household of at most ``size_limit`` (>= 1) people."""
        rnd = self.random
        cities = [city for city, _ in ORIGINS]
        origin = rnd.choices(cities, weights=[w for _, w in ORIGINS])[0]
        code, district, streets = rnd.choice(DISTRICTS)
        address = (
            f"广东省深圳市{district}{rnd.choice(streets)}{rnd.randrange(1, 300)}号"
            f"{rnd.randrange(1, 12)}栋{rnd.randrange(1, 30)}{rnd.randrange(1, 9):02d}"
        )
        arrived = self.today - timedelta(days=rnd.randrange(400, 12 * 365))
        household = Household(index, origin, code, address, arrived)
        head_sex = "M" if rnd.random() < 0.65 else "F"
        surname = rnd.choice(SURNAMES)
        household.adults.append(
            self.person(origin, sex=head_sex, surname=surname, ages=(24, 50), relationship="head")
        )
        if size_limit >= 2 and rnd.random() < 0.7:
            spouse_sex = "F" if head_sex == "M" else "M"
            household.adults.append(
                self.person(
                    origin,
                    sex=spouse_sex,
                    surname=rnd.choice(SURNAMES),
                    ages=(24, 50),
                    relationship="spouse",
                )
            )
        wanted = rnd.choices((0, 1, 2, 3), weights=(25, 45, 25, 5))[0]
        father = next((a for a in household.adults if a.sex == "M"), household.head)
        for _ in range(min(wanted, size_limit - len(household.adults))):
            household.children.append(
                self.person(
                    origin,
                    sex=rnd.choice("MF"),
                    surname=father.name[0],
                    ages=(6, 15),
                    relationship="child",
                )
            )
        return household

    def population(self, people: int) -> list[Household]:
        """Households totalling exactly ``people`` persons (at least one)."""
        households: list[Household] = []
        remaining = max(1, people)
        while remaining > 0:
            household = self.household(len(households), remaining)
            households.append(household)
            remaining -= len(household.members)
        return households


def all_people(households: Sequence[Household]) -> list[Person]:
    return [person for household in households for person in household.members]
