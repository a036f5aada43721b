"""A synthetic Jilin-like province: institutions, custody banks, accounts, related parties, products.

Everything here is a pure function of the seed, so a test, an evaluation run and a live demo all
see the same province. Reference items are the very msgspec Structs the API validates, which
keeps the simulator from drifting away from the contract.

Besides the reference data the province keeps the parties the banks do not monitor (customers of
payment institutions, merchants, employees, suppliers): they appear only as counterparties.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from functools import cached_property

import msgspec

from schemas.fields import BEIJING
from schemas.reference import (
    Account,
    AccountRole,
    Institution,
    InstitutionType,
    Product,
    RelatedParty,
    Relation,
)

# Products are on sale around this day unless the caller anchors the province elsewhere.
DEFAULT_AS_OF = date(2026, 11, 2)

# (code, name, city short name); weights favour the capital, as real registrations do.
REGIONS: tuple[tuple[str, str, str, float], ...] = (
    ("220102", "南关区", "长春", 6.0),
    ("220103", "宽城区", "长春", 3.0),
    ("220104", "朝阳区", "长春", 6.0),
    ("220105", "二道区", "长春", 2.0),
    ("220106", "绿园区", "长春", 2.0),
    ("220112", "双阳区", "长春", 0.6),
    ("220122", "农安县", "长春", 0.5),
    ("220182", "榆树市", "长春", 0.5),
    ("220202", "昌邑区", "吉林", 2.5),
    ("220203", "龙潭区", "吉林", 1.0),
    ("220204", "船营区", "吉林", 2.0),
    ("220221", "永吉县", "吉林", 0.4),
    ("220302", "铁西区", "四平", 1.0),
    ("220303", "铁东区", "四平", 0.8),
    ("220322", "梨树县", "四平", 0.3),
    ("220402", "龙山区", "辽源", 0.5),
    ("220502", "东昌区", "通化", 0.8),
    ("220702", "宁江区", "松原", 0.8),
    ("220802", "洮北区", "白城", 0.5),
    ("222401", "延吉市", "延边", 1.2),
)

# Custody banks the regulator has connected: (code, name, institutional prefix, personal BIN).
MONITORED_BANKS: tuple[tuple[str, str, str, str], ...] = (
    ("B001", "吉林银行", "0711", "622865"),
    ("B002", "中国工商银行吉林省分行", "0702", "621226"),
    ("B003", "中国建设银行吉林省分行", "2205", "621700"),
    ("B004", "长春农村商业银行", "0722", "623165"),
    ("B005", "中国农业银行吉林省分行", "0750", "622848"),
    ("B006", "中国银行吉林省分行", "1580", "621785"),
    ("B007", "交通银行吉林省分行", "2210", "622262"),
)

# Banks outside the feed; their accounts are only ever counterparties.
EXTERNAL_BANKS: tuple[tuple[str, str, str, str], ...] = (
    ("X102", "中国工商银行（省外）", "0200", "622202"),
    ("X103", "中国农业银行（省外）", "0310", "622845"),
    ("X104", "中国银行（省外）", "4560", "621661"),
    ("X105", "中国建设银行（省外）", "2201", "621799"),
    ("X301", "交通银行（省外）", "2220", "622260"),
    ("X308", "招商银行", "4310", "622588"),
    ("X403", "中国邮政储蓄银行", "9220", "621098"),
)

# Normal products stay clearly inside their peers: a declared yield whose robust z among the
# products of the same institution type ((y - median) / (1.4826 * MAD)) would pass this is lowered
# to it. The excess_return rule flags above 3.5 by default (models/thresholds.toml).
PEER_Z_MAX = Fraction(3)

# Mix of types once each type is present; P2P lending dominated the rectification campaign.
TYPE_WEIGHTS: dict[InstitutionType, float] = {
    InstitutionType.p2p_lending: 0.30,
    InstitutionType.asset_management: 0.14,
    InstitutionType.payment: 0.12,
    InstitutionType.equity_crowdfunding: 0.10,
    InstitutionType.internet_insurance: 0.10,
    InstitutionType.real_estate: 0.10,
    InstitutionType.other: 0.14,
}

CUSTODY_TYPES = frozenset(
    {InstitutionType.p2p_lending, InstitutionType.equity_crowdfunding, InstitutionType.asset_management}
)

_SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶"
    "阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
)
_GIVEN = (
    "伟 芳 娜 秀英 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀兰 霞 平 刚 桂英 华 建国 海燕 志强 玉兰 春梅 "
    "立新 晓东 丹 宇 鹏 博 浩 欣 雪 婷 琳 东升 国庆 红梅 淑华 丽娟 志刚 海涛 俊杰 子涵 雨轩 思远 佳怡 文博 "
    "振华 建华 凤英 玉梅 永刚 德明 金凤 桂兰 春雷 宏伟 成龙 晓梅 丽华 长春 松林 白雪 吉顺 铁军 艳秋"
).split()
_BRAND_HEAD = "鑫融汇聚长吉恒德瑞宏安信合盛天博嘉润中惠兴亿众华金诺丰泰达元通康福隆泽"
_BRAND_TAIL = "汇通盈信达丰泰润诚邦利源融财富安恒远成宝隆鼎和盛祥裕"
_INDUSTRIES = (
    "商贸 建材 农业科技 食品 汽车配件 物流 餐饮管理 医疗器械 建筑工程 "
    "文化传媒 电子科技 粮油贸易 服装 家居 化工 印务 装饰工程 人参产业"
).split()

_NAME_TEMPLATES: dict[InstitutionType, tuple[str, ...]] = {
    InstitutionType.p2p_lending: (
        "吉林省{brand}网络借贷信息中介服务有限公司",
        "{city}{brand}互联网金融信息服务有限公司",
        "{city}{brand}网络科技有限公司",
    ),
    InstitutionType.equity_crowdfunding: (
        "{city}{brand}股权众筹服务有限公司",
        "吉林{brand}创业投资服务有限公司",
    ),
    InstitutionType.internet_insurance: (
        "吉林{brand}互联网保险代理有限公司",
        "{city}{brand}保险经纪有限公司",
    ),
    InstitutionType.asset_management: (
        "{city}{brand}资产管理有限公司",
        "吉林省{brand}私募基金管理有限公司",
    ),
    InstitutionType.payment: (
        "吉林{brand}支付科技有限公司",
        "{city}{brand}网络支付服务有限公司",
    ),
    InstitutionType.real_estate: (
        "{city}{brand}房地产开发有限公司",
        "吉林{brand}置业有限公司",
    ),
    InstitutionType.other: (
        "{city}{brand}商务信息咨询有限公司",
        "{city}{brand}电子商务有限公司",
        "吉林{brand}财富管理咨询有限公司",
    ),
}

_SCOPES: dict[InstitutionType, str] = {
    InstitutionType.p2p_lending: "网络借贷信息中介服务；金融信息咨询；计算机软件开发及技术服务（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
    InstitutionType.equity_crowdfunding: "互联网股权融资信息服务；创业投资咨询；企业管理咨询；项目路演策划",
    InstitutionType.internet_insurance: "在全国区域内代理销售保险产品；代理收取保险费；根据保险公司委托代理相关业务的损失勘查和理赔",
    InstitutionType.asset_management: "受托资产管理；私募股权投资基金管理；投资管理及咨询（不得从事吸收公众存款或变相吸收公众存款）",
    InstitutionType.payment: "互联网支付；移动电话支付；银行卡收单；预付卡发行与受理",
    InstitutionType.real_estate: "房地产开发与经营；商品房销售；物业管理；建筑材料销售",
    InstitutionType.other: "商务信息咨询；企业营销策划；电子商务平台运营；会议及展览服务",
}

_LICENCES: dict[InstitutionType, tuple[str, ...]] = {
    InstitutionType.p2p_lending: ("网络借贷信息中介机构备案登记", "增值电信业务经营许可证"),
    InstitutionType.equity_crowdfunding: ("增值电信业务经营许可证",),
    InstitutionType.internet_insurance: ("保险代理业务许可证",),
    InstitutionType.asset_management: ("私募投资基金管理人登记",),
    InstitutionType.payment: ("支付业务许可证", "增值电信业务经营许可证"),
    InstitutionType.real_estate: ("房地产开发企业资质证书",),
    InstitutionType.other: (),
}

# GB 32100-2015 (unified social credit code) and GB 11714 (organisation code) check characters.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def _org_code(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(8))
    check = 11 - sum(int(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def make_uscc(rng: random.Random, region: str) -> str:
    """A code with valid check characters: registered with market regulation (9), a company (1)."""
    first17 = "91" + region + _org_code(rng)
    return first17 + uscc_check_char(first17)


@dataclass(frozen=True, slots=True)
class Bank:
    code: str
    name: str
    monitored: bool


@dataclass(frozen=True, slots=True)
class ExternalParty:
    """An account outside the feed: a customer, merchant, employee or supplier."""

    account_id: str
    bank_code: str
    name: str
    person: bool


@dataclass(frozen=True)
class Province:
    seed: int
    as_of: date
    banks: tuple[Bank, ...]
    institutions: tuple[Institution, ...]
    accounts: tuple[Account, ...]
    related_parties: tuple[RelatedParty, ...]
    products: tuple[Product, ...]
    external_banks: tuple[Bank, ...]
    externals: tuple[ExternalParty, ...]
    # Per institution: the investors who use it (always fewer than any private product's cap),
    # and the unmonitored parties it deals with.
    natural_persons: frozenset[str] = frozenset()  # monitored accounts held by people, not firms
    investor_pools: dict[str, tuple[str, ...]] = field(default_factory=dict)
    merchants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    employees: dict[str, tuple[str, ...]] = field(default_factory=dict)
    customers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    suppliers: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def reference_payloads(self) -> dict[str, list[dict]]:
        """JSON-ready reference data keyed by the API path under ``/v1/reference/``."""
        return {
            "institutions": [msgspec.to_builtins(item) for item in self.institutions],
            "accounts": [msgspec.to_builtins(item) for item in self.accounts],
            "related-parties": [msgspec.to_builtins(item) for item in self.related_parties],
            "products": [msgspec.to_builtins(item) for item in self.products],
        }

    @property
    def bank_codes(self) -> tuple[str, ...]:
        return tuple(bank.code for bank in self.banks)

    @cached_property
    def institution_by_id(self) -> dict[str, Institution]:
        return {inst.institution_id: inst for inst in self.institutions}

    @cached_property
    def account_by_id(self) -> dict[str, Account]:
        return {acc.account_id: acc for acc in self.accounts}

    @cached_property
    def external_by_id(self) -> dict[str, ExternalParty]:
        return {party.account_id: party for party in self.externals}

    @cached_property
    def _by_institution_role(self) -> dict[tuple[str | None, AccountRole], tuple[str, ...]]:
        grouped: dict[tuple[str | None, AccountRole], list[str]] = {}
        for acc in self.accounts:
            grouped.setdefault((acc.institution_id, acc.role), []).append(acc.account_id)
        return {key: tuple(ids) for key, ids in grouped.items()}

    def accounts_of(self, institution_id: str | None, role: AccountRole) -> tuple[str, ...]:
        return self._by_institution_role.get((institution_id, role), ())

    @cached_property
    def products_by_institution(self) -> dict[str, tuple[Product, ...]]:
        grouped: dict[str, list[Product]] = {}
        for product in self.products:
            grouped.setdefault(product.institution_id, []).append(product)
        return {key: tuple(items) for key, items in grouped.items()}

    def institutions_of_type(self, *types: InstitutionType) -> tuple[Institution, ...]:
        return tuple(inst for inst in self.institutions if inst.type in types)

    @cached_property
    def _by_bank(self) -> dict[str, frozenset[str]]:
        grouped: dict[str, set[str]] = {bank.code: set() for bank in self.banks}
        for acc in self.accounts:
            grouped[acc.bank_code].add(acc.account_id)
        return {code: frozenset(ids) for code, ids in grouped.items()}

    def accounts_at(self, bank_code: str) -> frozenset[str]:
        """The monitored accounts held at ``bank_code``: the only ones its records may name."""
        return self._by_bank.get(bank_code, frozenset())


class _Builder:
    """Draws the province in a fixed order; the order is part of what makes a seed reproducible."""

    def __init__(self, seed: int, banks: int, as_of: date) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.as_of = as_of
        self.banks = MONITORED_BANKS[:banks]
        self.used_numbers: set[str] = set()
        self.used_brands: set[str] = set()
        self.accounts: list[Account] = []
        self.related: list[RelatedParty] = []
        self.products: list[Product] = []
        self.externals: list[ExternalParty] = []
        self.persons: set[str] = set()
        self.brand_of: dict[str, str] = {}

    # -- names and numbers -------------------------------------------------------------------

    def person_name(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    def brand(self) -> str:
        for _ in range(_BRAND_DRAWS):
            brand = self.rng.choice(_BRAND_HEAD) + self.rng.choice(_BRAND_TAIL)
            if brand not in self.used_brands and brand[0] != brand[1]:
                self.used_brands.add(brand)
                return brand
        # The two-character brands run out in a province of a few hundred institutions (each
        # institution's borrowers and partners are firms too): number them from then on.
        while True:
            brand = self.rng.choice(_BRAND_HEAD) + self.rng.choice(_BRAND_TAIL) + str(len(self.used_brands))
            if brand not in self.used_brands:
                self.used_brands.add(brand)
                return brand

    def firm_name(self, city: str) -> str:
        return f"{city}{self.brand()}{self.rng.choice(_INDUSTRIES)}有限公司"

    def account_number(self, prefix: str) -> str:
        while True:
            number = prefix + "".join(self.rng.choice("0123456789") for _ in range(19 - len(prefix)))
            if number not in self.used_numbers:
                self.used_numbers.add(number)
                return number

    def monitored_bank(self, weights: tuple[float, ...] | None = None) -> tuple[str, str, str, str]:
        return self.rng.choices(self.banks, weights=weights)[0]

    def open_account(
        self,
        role: AccountRole,
        holder: str,
        institution_id: str | None,
        *,
        person: bool = False,
        bank: tuple[str, str, str, str] | None = None,
    ) -> str:
        code, _, corporate_prefix, personal_bin = bank or self.monitored_bank()
        account_id = self.account_number(personal_bin if person else corporate_prefix)
        if person:
            self.persons.add(account_id)
        self.accounts.append(
            Account(
                account_id=account_id,
                bank_code=code,
                role=role,
                holder_name=holder,
                institution_id=institution_id,
            )
        )
        return account_id

    # -- the pieces --------------------------------------------------------------------------

    def institution_types(self, count: int) -> list[InstitutionType]:
        kinds = list(InstitutionType)
        types = kinds + self.rng.choices(
            list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()), k=count - len(kinds)
        )
        self.rng.shuffle(types)
        return types

    def regions(self, count: int) -> list[tuple[str, str, str, float]]:
        # Prefixes 2201, 2202 and 2203 must all hold someone, so a city desk always has work.
        anchors = [r for r in REGIONS if r[0] in ("220104", "220202", "220302")]
        rest = self.rng.choices(REGIONS, weights=[r[3] for r in REGIONS], k=max(0, count - len(anchors)))
        picked = (anchors + rest)[:count]
        self.rng.shuffle(picked)
        return picked

    def institution(
        self, number: int, kind: InstitutionType, region: tuple[str, str, str, float]
    ) -> Institution:
        code, _, city, _ = region
        template = self.rng.choice(_NAME_TEMPLATES[kind])
        brand = self.brand()
        self.brand_of[f"INS{number:04d}"] = brand
        return Institution(
            institution_id=f"INS{number:04d}",
            name=template.format(brand=brand, city=city),
            uscc=make_uscc(self.rng, code),
            type=kind,
            region=code,
            business_scope=_SCOPES[kind],
            licences=list(_LICENCES[kind]),
            status="active",
        )

    def institution_accounts(self, inst: Institution) -> None:
        home = self.monitored_bank()
        iid = inst.institution_id
        if inst.type in CUSTODY_TYPES:
            self.open_account(AccountRole.customer_custody, inst.name, iid, bank=home)
        if inst.type is InstitutionType.payment:
            # Payment institutions keep reserves at several banks; the first is the main one.
            count = min(len(self.banks), self.rng.randint(2, 4))
            for bank in [home] + self.rng.sample([b for b in self.banks if b != home], count - 1):
                self.open_account(AccountRole.payment_reserve, inst.name, iid, bank=bank)
        self.open_account(AccountRole.own_operating, inst.name, iid, bank=home)
        if self.rng.random() < 0.4:
            self.open_account(AccountRole.own_operating, inst.name, iid)

    def related_parties(self, inst: Institution, city: str, first_number: int) -> int:
        relations = [Relation.actual_controller, Relation.shareholder, Relation.executive]
        relations += self.rng.choices(
            [Relation.shareholder, Relation.executive, Relation.affiliate, Relation.affiliate],
            k=self.rng.randint(1, 3),
        )
        number = first_number
        for relation in relations:
            firm = relation is Relation.affiliate or (
                relation is Relation.shareholder and self.rng.random() < 0.4
            )
            name = self.firm_name(city) if firm else self.person_name()
            accounts = [
                self.open_account(AccountRole.related_party, name, inst.institution_id, person=not firm)
                for _ in range(1 if self.rng.random() < 0.8 else 2)
            ]
            self.related.append(
                RelatedParty(
                    party_id=f"RP{number:05d}",
                    institution_id=inst.institution_id,
                    name=name,
                    relation=relation,
                    accounts=accounts,
                )
            )
            number += 1
        return number

    def borrowers(self, inst: Institution, city: str) -> None:
        if inst.type is InstitutionType.p2p_lending:
            count, person_share = self.rng.randint(15, 40), 0.7
        else:
            # Crowdfunded start-ups and the projects behind asset-management products are firms.
            count, person_share = self.rng.randint(4, 10), 0.0
        for _ in range(count):
            person = self.rng.random() < person_share
            name = self.person_name() if person else self.firm_name(city)
            self.open_account(AccountRole.borrower, name, inst.institution_id, person=person)

    def investors(self, inst: Institution, city: str) -> list[str]:
        firm_share = 0.3 if inst.type is InstitutionType.asset_management else 0.08
        own: list[str] = []
        for _ in range(self.rng.randint(40, 110)):
            person = self.rng.random() >= firm_share
            name = self.person_name() if person else self.firm_name(city)
            own.append(self.open_account(AccountRole.investor, name, inst.institution_id, person=person))
        return own

    def products_for(self, inst: Institution, first_number: int) -> int:
        kind = inst.type
        if kind is InstitutionType.p2p_lending:
            terms = self.rng.sample([30, 90, 180, 360], self.rng.randint(2, 4))
            names = {30: "月月盈", 90: "季季丰", 180: "半年享", 360: "年年鑫"}
        elif kind is InstitutionType.equity_crowdfunding:
            terms = self.rng.sample([360, 540, 720, 1080], self.rng.randint(2, 3))
            names = {t: "股权众筹项目" for t in terms}
        else:
            terms = self.rng.sample([180, 270, 360, 720], self.rng.randint(2, 4))
            names = {t: "稳健私募投资基金" for t in terms}
        brand = self.brand_of[inst.institution_id]
        number = first_number
        for index, term in enumerate(sorted(terms), start=1):
            # Borrower-side rates stay under four times the one-year LPR (about 13.8 %), and the
            # promised yield below the project's rate: normal products give no excess-return signal.
            project_bp = self.rng.randint(800, 1300)
            if kind is InstitutionType.asset_management:
                project_bp = self.rng.randint(650, 1000)
            yield_bp = max(350, project_bp - self.rng.randint(150, 400))
            private = kind is not InstitutionType.p2p_lending
            start_day = self.as_of - timedelta(days=self.rng.randint(30, 400))
            end_day = self.as_of + timedelta(days=self.rng.randint(365, 1100))
            self.products.append(
                Product(
                    product_id=f"PRD{number:04d}",
                    institution_id=inst.institution_id,
                    name=f"{brand}{names[term]}{index}号" if private else f"{brand}{names[term]}{term}天",
                    declared_annual_yield=_rate(yield_bp),
                    term_days=term,
                    underlying_project_rate=_rate(project_bp),
                    underlying_term_days=term,
                    investor_cap=200 if private else None,
                    sale_start=_beijing(start_day, time(9, 0)),
                    sale_end=_beijing(end_day, time(17, 0)),
                )
            )
            number += 1
        return number

    def external_parties(self, persons: int, firms: int) -> tuple[list[str], list[str]]:
        person_ids, firm_ids = [], []
        for index in range(persons + firms):
            person = index < persons
            code, _, corporate_prefix, personal_bin = self.rng.choice(EXTERNAL_BANKS)
            city = self.rng.choice(REGIONS)[2]
            party = ExternalParty(
                account_id=self.account_number(personal_bin if person else corporate_prefix),
                bank_code=code,
                name=self.person_name() if person else self.firm_name(city),
                person=person,
            )
            self.externals.append(party)
            (person_ids if person else firm_ids).append(party.account_id)
        return person_ids, firm_ids


def _median(values: list[Fraction]) -> Fraction:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# Draws of an unused two-character brand before numbering them; far more than a province of tens
# of institutions ever needs, so those stay as they are.
_BRAND_DRAWS = 400


def _tame_outliers(products: list[Product], type_of: dict[str, InstitutionType]) -> list[Product]:
    """``products`` with every declared yield above ``PEER_Z_MAX`` robust z of its type lowered to
    that line (still covered by its project: only lower). Lowering the highest point leaves the
    median and the MAD as they were, so one pass per outlier is enough."""
    out = list(products)
    for kind in dict.fromkeys(type_of[p.institution_id] for p in out):
        index = [n for n, p in enumerate(out) if type_of[p.institution_id] is kind]
        while True:
            yields = [Fraction(out[n].declared_annual_yield) for n in index]
            mid = _median(yields)
            mad = _median([abs(y - mid) for y in yields])
            if mad == 0:
                break
            line = mid + PEER_Z_MAX * Fraction(14826, 10000) * mad
            worst = max(index, key=lambda n: (Fraction(out[n].declared_annual_yield), n))
            if Fraction(out[worst].declared_annual_yield) <= line:
                break
            out[worst] = msgspec.structs.replace(
                out[worst], declared_annual_yield=_rate(math.floor(line * 10_000))
            )
    return out


def _rate(basis_points: int) -> str:
    return f"{basis_points // 10000}.{basis_points % 10000:04d}".rstrip("0").rstrip(".") or "0"


def _beijing(day: date, at: time) -> str:
    return datetime.combine(day, at, BEIJING).isoformat()


def _borrowers_by_product(accounts: list[Account], products: list[Product]) -> list[Account]:
    """Each custody platform's borrowers spread over its products in turn (the first borrower
    opened to the first product, ...), the product named on the borrower's account: a loan is
    funded by one product, and its borrower repays into that product. No draw from the seed."""
    by_institution: dict[str, list[str]] = {}
    for product in sorted(products, key=lambda p: p.product_id):
        by_institution.setdefault(product.institution_id, []).append(product.product_id)
    turn: dict[str, int] = {}
    out = []
    for account in accounts:
        own = by_institution.get(account.institution_id or "")
        if account.role is AccountRole.borrower and own:
            n = turn.get(account.institution_id, 0)
            turn[account.institution_id] = n + 1
            account = msgspec.structs.replace(account, product_id=own[n % len(own)])
        out.append(account)
    return out


def build_province(
    seed: int,
    institutions: int = 24,
    *,
    banks: int = 5,
    as_of: date = DEFAULT_AS_OF,
) -> Province:
    """The province for ``seed``: the same arguments always give the same province.

    ``as_of`` anchors product sale windows, so a feed starting near it finds products on sale.
    """
    if institutions < len(InstitutionType):
        raise ValueError(
            f"institutions must be at least {len(InstitutionType)} so that every type is present"
        )
    if not 2 <= banks <= len(MONITORED_BANKS):
        raise ValueError(f"banks must be between 2 and {len(MONITORED_BANKS)}")
    b = _Builder(seed, banks, as_of)
    types = b.institution_types(institutions)
    regions = b.regions(institutions)

    insts: list[Institution] = []
    own_investors: dict[str, list[str]] = {}
    party_number = product_number = 1
    for number, (kind, region) in enumerate(zip(types, regions, strict=True), start=1):
        inst = b.institution(number, kind, region)
        insts.append(inst)
        city = region[2]
        b.institution_accounts(inst)
        party_number = b.related_parties(inst, city, party_number)
        if kind in CUSTODY_TYPES:
            b.borrowers(inst, city)
            own_investors[inst.institution_id] = b.investors(inst, city)
            product_number = b.products_for(inst, product_number)

    # Investors who shop around: monitored, but tied to no single platform.
    free_investors = [
        b.open_account(AccountRole.investor, b.person_name(), None, person=True) for _ in range(120)
    ]
    person_ids, firm_ids = b.external_parties(persons=400, firms=160)

    investor_pools: dict[str, tuple[str, ...]] = {}
    for iid, own in own_investors.items():
        # At most 150 investors per platform keeps every private product under its cap of 200.
        extra = b.rng.sample(free_investors, min(len(free_investors), 150 - len(own), b.rng.randint(10, 40)))
        investor_pools[iid] = tuple(own + extra)
    merchants, employees, customers, suppliers = {}, {}, {}, {}
    for inst in insts:
        iid = inst.institution_id
        employees[iid] = tuple(b.rng.sample(person_ids, b.rng.randint(5, 30)))
        suppliers[iid] = tuple(b.rng.sample(firm_ids, b.rng.randint(3, 10)))
        customers[iid] = tuple(b.rng.sample(person_ids, b.rng.randint(60, 200)))
        if inst.type is InstitutionType.payment:
            merchants[iid] = tuple(b.rng.sample(firm_ids, b.rng.randint(15, 40)))

    return Province(
        seed=seed,
        as_of=as_of,
        banks=tuple(Bank(code, name, True) for code, name, _, _ in b.banks),
        institutions=tuple(insts),
        accounts=tuple(_borrowers_by_product(b.accounts, b.products)),
        related_parties=tuple(b.related),
        products=tuple(_tame_outliers(b.products, {inst.institution_id: inst.type for inst in insts})),
        external_banks=tuple(Bank(code, name, False) for code, name, _, _ in EXTERNAL_BANKS),
        externals=tuple(b.externals),
        natural_persons=frozenset(b.persons),
        investor_pools=investor_pools,
        merchants=merchants,
        employees=employees,
        customers=customers,
        suppliers=suppliers,
    )
